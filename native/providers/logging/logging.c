/*
 * logging.c - wascc:logging, a native capability provider that writes the
 * log lines of its bound actors to a file or to stderr.
 *
 * Operation (actor -> provider):
 *   WriteLog  {level: u32, body: str}  -> empty reply
 *             levels OFF 0, ERROR 1, WARN 2, INFO 3, DEBUG 4, TRACE 5.
 *
 * Binding configuration (CapabilityConfiguration values, read at BindActor):
 *   FILE   optional; a path to append to, opened O_WRONLY|O_APPEND|O_CREAT
 *          with mode 0640 when the actor is bound and closed when it is
 *          removed (or the provider stops).  Absent or empty: stderr.
 *          Actors bound with the same FILE string share one descriptor.
 *   LEVEL  optional; the most verbose level written, a name (OFF, ERROR,
 *          WARN or WARNING, INFO, DEBUG, TRACE; any case) or a number 0-5.
 *          Default INFO, so DEBUG and TRACE lines are dropped unless asked
 *          for.  LEVEL=OFF writes nothing.
 *   An unknown LEVEL or a FILE that cannot be opened fails BindActor with a
 *   message naming the value.  Binding a bound actor again is a
 *   reconfiguration (provider.h, section 2): the new LEVEL and FILE are
 *   checked and the new file opened first; only then is the old binding
 *   replaced, so a re-bind that fails leaves the old one writing.
 *
 * Each WriteLog that passes the filter writes exactly one line:
 *
 *   2024-05-01T12:00:00.123Z WARN MB2...(actor public key) the body\n
 *
 * UTC timestamp (ISO 8601, milliseconds, "Z"), the level name, the calling
 * actor's public key and the body, separated by single spaces.  The body is
 * escaped so that one call is always one line of valid UTF-8: backslash ->
 * \\, newline -> \n, CR -> \r, tab -> \t, other C0 controls and DEL -> \xHH,
 * C1 controls and U+2028/U+2029 -> \uHHHH, bytes that are not UTF-8 ->
 * \xHH.  Bodies over 64 KiB are cut at a character boundary and marked
 * " [+N bytes truncated]".
 *
 * Level 0 (OFF) is never written and succeeds; a level above 5, a missing
 * level or a payload that is not a WriteLog map is an error for the caller.
 * A WriteLog from an actor that is not bound is refused.
 *
 * Threads: handle_call runs concurrently.  A line is written with a single
 * write() (looping only on a short write) while holding the destination's
 * lock, so concurrent calls never interleave within a line; stderr has one
 * process-wide lock shared by every instance of this provider.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "wpu.h"

#define LOG_CAPABILITY "wascc:logging"
#define LOG_MAX_BODY (64 * 1024)
#define LOG_DEFAULT_LEVEL 3 /* INFO */

static const char *const LEVEL_NAMES[] = {"OFF", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"};
#define LOG_MAX_LEVEL 5

/* One open destination, shared by the bindings that name the same FILE. */
typedef struct log_sink {
    struct log_sink *next;
    char *path;                /* NULL: stderr */
    int fd;
    int refs;                  /* bindings + calls writing now; guarded by state->lock */
    pthread_mutex_t own_lock;  /* a file sink's write lock */
    pthread_mutex_t *write_lock;
} log_sink;

typedef struct log_binding {
    struct log_binding *next;
    char *actor;
    int max_level;
    log_sink *sink;
} log_binding;

/* The provider's state, inside the skeleton's block (wpu.h). */
typedef struct {
    pthread_mutex_t lock; /* bindings, sinks, refcounts, stopped */
    log_binding *bindings;
    log_sink *sinks;
    int stopped;
} log_state;

static pthread_mutex_t stderr_lock = PTHREAD_MUTEX_INITIALIZER;

static const wpu_operation OPERATIONS[] = {
    {"WriteLog", 1, "write one log line {level: u32, body: str} for the calling actor"},
};

static const wpu_descriptor_t DESCRIPTOR = {
    .id = LOG_CAPABILITY,
    .name = "wascc native logging provider",
    .version = "0.1.0",
    .revision = 1,
    .long_description = "Writes actors' log lines (UTC timestamp, level, actor key, body) "
                        "to the file named by the binding's FILE, or to stderr; LEVEL "
                        "filters (default INFO)",
    .operations = OPERATIONS,
    .n_operations = sizeof OPERATIONS / sizeof OPERATIONS[0],
};

/* ---- sinks (callers hold state->lock) ----------------------------------- */

static log_sink *sink_acquire(log_state *st, const char *path, char *err, size_t errlen) {
    for (log_sink *s = st->sinks; s; s = s->next) {
        if ((path == NULL && s->path == NULL) ||
            (path && s->path && strcmp(path, s->path) == 0)) {
            s->refs++;
            return s;
        }
    }
    log_sink *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (path) {
        s->path = strdup(path);
        if (!s->path) {
            free(s);
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        s->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
        if (s->fd < 0) {
            snprintf(err, errlen, "cannot open FILE %s for appending: %s", path,
                     strerror(errno));
            free(s->path);
            free(s);
            return NULL;
        }
        pthread_mutex_init(&s->own_lock, NULL);
        s->write_lock = &s->own_lock;
    } else {
        s->fd = STDERR_FILENO;
        s->write_lock = &stderr_lock;
    }
    s->refs = 1;
    s->next = st->sinks;
    st->sinks = s;
    return s;
}

static void sink_release(log_state *st, log_sink *s) {
    if (--s->refs > 0) return;
    for (log_sink **pp = &st->sinks; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    if (s->path) {
        close(s->fd);
        pthread_mutex_destroy(&s->own_lock);
        free(s->path);
    }
    free(s);
}

static log_binding **binding_find(log_state *st, const char *actor) {
    log_binding **pp = &st->bindings;
    while (*pp && strcmp((*pp)->actor, actor) != 0) pp = &(*pp)->next;
    return pp;
}

static void binding_free(log_state *st, log_binding *b) {
    sink_release(st, b->sink);
    free(b->actor);
    free(b);
}

/* ---- configuration ------------------------------------------------------ */

/* The level named by text (name in any case, or a digit 0-5); -1 if none. */
static int parse_level(const char *text) {
    char up[16];
    size_t n = strlen(text);
    while (n && isspace((unsigned char)text[n - 1])) n--;
    while (n && isspace((unsigned char)*text)) {
        text++;
        n--;
    }
    if (n == 0 || n >= sizeof up) return -1;
    for (size_t i = 0; i < n; i++) up[i] = (char)toupper((unsigned char)text[i]);
    up[n] = 0;
    if (n == 1 && up[0] >= '0' && up[0] <= '0' + LOG_MAX_LEVEL) return up[0] - '0';
    if (strcmp(up, "WARNING") == 0) return 2;
    for (int i = 0; i <= LOG_MAX_LEVEL; i++)
        if (strcmp(up, LEVEL_NAMES[i]) == 0) return i;
    return -1;
}

static int32_t bind_actor(void *state, const wpu_config *cfg, uint8_t **out,
                          size_t *out_len) {
    log_state *st = state;
    int level = LOG_DEFAULT_LEVEL;
    const char *level_text = wpu_config_get(cfg, "LEVEL");
    if (level_text && *level_text) {
        level = parse_level(level_text);
        if (level < 0) {
            return wpu_error(out, out_len,
                             "BindActor %s: LEVEL %s is not one of OFF, ERROR, WARN, INFO, "
                             "DEBUG, TRACE or 0-5",
                             cfg->module, level_text);
        }
    }
    const char *path = wpu_config_get(cfg, "FILE");
    if (path && !*path) path = NULL;

    log_binding *b = calloc(1, sizeof *b);
    if (b) b->actor = strdup(cfg->module);
    if (!b || !b->actor) {
        free(b);
        return wpu_error(out, out_len, "BindActor: out of memory");
    }
    b->max_level = level;

    char err[512];
    pthread_mutex_lock(&st->lock);
    if (st->stopped) {
        pthread_mutex_unlock(&st->lock);
        free(b->actor);
        free(b);
        return wpu_error(out, out_len, "BindActor: the logging provider is stopped");
    }
    b->sink = sink_acquire(st, path, err, sizeof err);
    if (!b->sink) {
        pthread_mutex_unlock(&st->lock);
        free(b->actor);
        free(b);
        return wpu_error(out, out_len, "BindActor %s: %s", cfg->module, err);
    }
    /* Binding again replaces the previous configuration. */
    log_binding **pp = binding_find(st, b->actor);
    if (*pp) {
        log_binding *old = *pp;
        *pp = old->next;
        binding_free(st, old);
    }
    b->next = st->bindings;
    st->bindings = b;
    pthread_mutex_unlock(&st->lock);
    return wpu_empty(out, out_len);
}

static int32_t remove_actor(void *state, const wpu_config *cfg, uint8_t **out,
                            size_t *out_len) {
    log_state *st = state;
    pthread_mutex_lock(&st->lock);
    log_binding **pp = binding_find(st, cfg->module);
    if (*pp) {
        log_binding *b = *pp;
        *pp = b->next;
        binding_free(st, b); /* closes the file unless a call is writing to it now */
    }
    pthread_mutex_unlock(&st->lock);
    return wpu_empty(out, out_len);
}

/* ---- formatting --------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
} log_buf;

static void put(log_buf *b, const char *s, size_t n) {
    /* The buffer is sized up front (see write_log); never overflows. */
    if (b->len + n > b->cap) n = b->cap - b->len;
    memcpy(b->buf + b->len, s, n);
    b->len += n;
}

static void put_hex(log_buf *b, const char *prefix, unsigned v, int digits) {
    char tmp[16];
    int n = snprintf(tmp, sizeof tmp, "%s%0*X", prefix, digits, v);
    put(b, tmp, (size_t)n);
}

/* Escapes the body into b: at most 4 output bytes per input byte. */
static void put_escaped(log_buf *b, const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            size_t j = i;
            while (j < n && s[j] >= 0x20 && s[j] < 0x7f && s[j] != '\\') j++;
            put(b, (const char *)s + i, j - i);
            i = j;
            continue;
        }
        switch (c) {
        case '\\': put(b, "\\\\", 2); i++; continue;
        case '\n': put(b, "\\n", 2); i++; continue;
        case '\r': put(b, "\\r", 2); i++; continue;
        case '\t': put(b, "\\t", 2); i++; continue;
        default: break;
        }
        if (c < 0x80) { /* other C0 controls and DEL */
            put_hex(b, "\\x", c, 2);
            i++;
            continue;
        }
        uint32_t cp;
        size_t len = wpu_utf8_seq(s + i, n - i, &cp);
        if (len == 0) {
            put_hex(b, "\\x", c, 2);
            i++;
        } else if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029) {
            put_hex(b, "\\u", cp, 4); /* 6 bytes for 2 or 3 input bytes */
            i += len;
        } else {
            put(b, (const char *)s + i, len);
            i += len;
        }
    }
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int32_t write_log(log_state *st, const char *actor, const uint8_t *msg, size_t len,
                         uint8_t **out, size_t *out_len) {
    wmp_reader r;
    wmp_reader_init(&r, msg, len);
    uint32_t fields;
    int64_t level = -1;
    int have_level = 0;
    const uint8_t *body = (const uint8_t *)"";
    uint32_t body_len = 0;
    if (!wmp_read_map(&r, &fields))
        return wpu_error(out, out_len, "WriteLog: the payload is not a msgpack map "
                                       "{level, body}");
    for (uint32_t f = 0; f < fields; f++) {
        const char *k;
        uint32_t kl;
        if (!wmp_read_str(&r, &k, &kl)) break;
        if (wmp_eq(k, kl, "level")) {
            if (!wmp_read_int(&r, &level)) break;
            have_level = 1;
        } else if (wmp_eq(k, kl, "body")) {
            if (wmp_peek(&r) == WMP_NIL) {
                wmp_read_nil(&r);
            } else if (!wmp_read_bytes_any(&r, &body, &body_len)) {
                break;
            }
        } else if (!wmp_skip(&r)) {
            break;
        }
    }
    if (r.err)
        return wpu_error(out, out_len, "WriteLog: the payload is not valid msgpack "
                                       "{level: u32, body: str}");
    if (!have_level) return wpu_error(out, out_len, "WriteLog: the payload has no level");
    if (level < 0 || level > LOG_MAX_LEVEL)
        return wpu_error(out, out_len,
                         "WriteLog: level %lld is not one of 0 (OFF) to 5 (TRACE)",
                         (long long)level);

    pthread_mutex_lock(&st->lock);
    log_binding *b = *binding_find(st, actor);
    if (!b) {
        pthread_mutex_unlock(&st->lock);
        return wpu_error(out, out_len, "actor %s is not bound to %s", actor, LOG_CAPABILITY);
    }
    if (level == 0 || level > b->max_level) {
        pthread_mutex_unlock(&st->lock);
        return wpu_empty(out, out_len);
    }
    log_sink *sink = b->sink;
    sink->refs++; /* keeps the file open even if the actor is removed meanwhile */
    pthread_mutex_unlock(&st->lock);

    size_t body_n = body_len, cut = 0;
    if (body_n > LOG_MAX_BODY) {
        body_n = LOG_MAX_BODY;
        while (body_n > 0 && (body[body_n] & 0xc0) == 0x80) body_n--;
        cut = body_len - body_n;
    }
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char head[64];
    int hn = snprintf(head, sizeof head, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s ",
                      tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                      tm.tm_sec, (int)(ts.tv_nsec / 1000000), LEVEL_NAMES[level]);
    size_t actor_len = strlen(actor);
    log_buf line = {0};
    line.cap = (size_t)hn + 4 * actor_len + 1 + 4 * body_n + 64 + 1;
    line.buf = malloc(line.cap);
    int32_t rc;
    if (!line.buf) {
        rc = wpu_error(out, out_len, "WriteLog: out of memory");
    } else {
        put(&line, head, (size_t)hn);
        put_escaped(&line, (const uint8_t *)actor, actor_len);
        put(&line, " ", 1);
        put_escaped(&line, body, body_n);
        if (cut) {
            char tail[64];
            int tn = snprintf(tail, sizeof tail, " [+%zu bytes truncated]", cut);
            put(&line, tail, (size_t)tn);
        }
        put(&line, "\n", 1);
        pthread_mutex_lock(sink->write_lock);
        int failed = write_all(sink->fd, line.buf, line.len);
        int saved = errno;
        pthread_mutex_unlock(sink->write_lock);
        free(line.buf);
        if (failed)
            rc = wpu_error(out, out_len, "WriteLog: cannot write to %s: %s",
                           sink->path ? sink->path : "stderr", strerror(saved));
        else
            rc = wpu_empty(out, out_len);
    }
    pthread_mutex_lock(&st->lock);
    sink_release(st, sink);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

/* ---- the provider (the ABI glue is wpu.h's skeleton) --------------------- */

static int32_t log_call(void *state, const wpu_call *call, uint8_t **out, size_t *out_len) {
    /* the descriptor's only operation for actors: WriteLog */
    return write_log(state, call->actor, call->msg, call->len, out, out_len);
}

static int log_init(void *state) {
    log_state *st = state;
    return pthread_mutex_init(&st->lock, NULL) != 0 ? -1 : 0;
}

static void log_stop(void *state) {
    log_state *st = state;
    pthread_mutex_lock(&st->lock);
    st->stopped = 1;
    while (st->bindings) {
        log_binding *b = st->bindings;
        st->bindings = b->next;
        binding_free(st, b);
    }
    pthread_mutex_unlock(&st->lock);
}

static void log_destroy(void *state) {
    log_state *st = state;
    /* After stop no call is in flight (the host's guarantee): no sink is left
     * but stderr's, if a call raced the stop. */
    while (st->sinks) {
        log_sink *s = st->sinks;
        s->refs = 1;
        sink_release(st, s);
    }
    pthread_mutex_destroy(&st->lock);
}

/* HealthRequest is the skeleton's default: healthy until stop. */
static const wpu_provider_def LOG_PROVIDER = {
    .descriptor = &DESCRIPTOR,
    .state_size = sizeof(log_state),
    .init = log_init,
    .bind = bind_actor,
    .remove = remove_actor,
    .call = log_call,
    .stop = log_stop,
    .destroy = log_destroy,
};

WPU_PROVIDER(LOG_PROVIDER)
