/*
 * kvredis.c - the Redis backend of the native wascc:keyvalue provider, on
 * hiredis (see kvredis.h and keyvalue.c's file-top docs for the rules both
 * backends follow).
 *
 * Why C and hiredis rather than a Python provider on redis-py: the call stays
 * on the data plane (actor -> host -> this .so -> socket) without entering
 * Python or taking the GIL, so a Get costs one Redis round trip plus the
 * in-memory provider's round trip (benchmarks/bench_backends.py measures it).
 *
 * Pool: POOL_SIZE blocking hiredis contexts per binding, each lent to one
 * call at a time under the pool's mutex (a hiredis context is not
 * thread-safe).  A call waits at most TIMEOUT_MS for a free context; TCP
 * connects, reads and writes are bounded by TIMEOUT_MS too.  A context that
 * fails (I/O error, timeout, protocol error) is freed and the pool's
 * generation advances, so every other idle context, probably broken by the
 * same Redis restart, reconnects before its next use: the actor sees the one
 * call that found the break fail, not one per pooled connection.  No command
 * is retried (Add and Push are not idempotent).
 *
 * SIGPIPE: writing to a connection Redis has closed raises SIGPIPE.  Python
 * ignores it; in a host that does not, each command runs with SIGPIPE blocked
 * on the calling thread and a pending one is consumed before unblocking.
 */
#define _GNU_SOURCE
#include "kvredis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wpu.h"

typedef struct {
    redisContext *ctx; /* NULL: not connected */
    unsigned generation;
    int busy;
} kvr_slot;

struct kv_redis {
    int refs; /* atomic */
    char *host;   /* TCP host (brackets removed), or NULL for a Unix socket */
    int port;
    char *path;   /* Unix socket path */
    char *user, *password; /* NULL when absent */
    long db;
    char *shown;  /* the URL with the password masked, for messages */
    int timeout_ms;
    struct timeval tv;
    pthread_mutex_t lock;
    pthread_cond_t freed;
    unsigned generation;
    int size;
    kvr_slot *slots;
};

struct kv_redis_conn {
    kv_redis *pool;
    kvr_slot *slot;
    redisContext *ctx;
};

static int sigpipe_guard = -1; /* -1 unknown, 0 SIGPIPE ignored, 1 guard each command */

/* ---- small helpers ------------------------------------------------------ */

static char *vformat(const char *fmt, va_list ap) {
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    char *s = malloc(n > 0 ? (size_t)n + 1 : 1);
    if (!s) return NULL;
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

static char *format(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(fmt, ap);
    va_end(ap);
    return s;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A %-decoded copy of s[0, n); NULL on a bad escape or NUL byte (or ENOMEM). */
static char *pct_decode(const char *s, size_t n) {
    char *d = malloc(n + 1), *o = d;
    if (!d) return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0) {
                free(d);
                return NULL;
            }
            c = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        }
        if (c == 0) {
            free(d);
            return NULL;
        }
        *o++ = c;
    }
    *o = 0;
    return d;
}

/* A decimal integer in [min, max], the whole string; 0 if not. */
static int parse_long(const char *s, size_t n, long min, long max, long *v) {
    if (n == 0 || n > 10) return 0;
    long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        x = x * 10 + (s[i] - '0');
    }
    if (x < min || x > max) return 0;
    *v = x;
    return 1;
}

static void kvr_free(kv_redis *r) {
    if (!r) return;
    if (r->slots)
        for (int i = 0; i < r->size; i++)
            if (r->slots[i].ctx) redisFree(r->slots[i].ctx);
    free(r->slots);
    free(r->host);
    free(r->path);
    free(r->user);
    free(r->password);
    free(r->shown);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->freed);
    free(r);
}

/* ---- the URL ------------------------------------------------------------ */

/* Fills r's address from the URL; NULL, or the reason it is not a Redis URL. */
static const char *parse_url(kv_redis *r, const char *url) {
    size_t n = strlen(url);
    const char *rest;
    int unix_socket = 0;
    if (strncmp(url, "redis://", 8) == 0) {
        rest = url + 8;
    } else if (strncmp(url, "redis+unix://", 13) == 0) {
        rest = url + 13;
        unix_socket = 1;
    } else if (strncmp(url, "unix://", 7) == 0) {
        rest = url + 7;
        unix_socket = 1;
    } else if (strncmp(url, "rediss://", 9) == 0) {
        return "TLS (rediss://) is not supported; use redis:// or a Unix socket";
    } else {
        return "it must start with redis://, redis+unix:// or unix://";
    }
    const char *end = url + n;
    if (unix_socket) {
        const char *q = strchr(rest, '?');
        const char *pend = q ? q : end;
        if (pend == rest || rest[0] != '/') return "a Unix socket URL needs an absolute path";
        r->path = pct_decode(rest, (size_t)(pend - rest));
        if (!r->path) return "the path has a bad %-escape or a NUL byte";
        if (q) {
            if (strncmp(q + 1, "db=", 3) != 0) return "the only query parameter known is db=N";
            if (!parse_long(q + 4, strlen(q + 4), 0, 1000000, &r->db))
                return "db must be a number (0, 1, ...)";
        }
        return NULL;
    }
    /* [user[:password]@]host[:port][/db] */
    const char *slash = memchr(rest, '/', (size_t)(end - rest));
    const char *auth_end = NULL;
    for (const char *s = rest; s < (slash ? slash : end); s++)
        if (*s == '@') auth_end = s; /* the last '@' before the path */
    const char *hp = rest;
    if (auth_end) {
        const char *colon = memchr(rest, ':', (size_t)(auth_end - rest));
        if (colon) {
            if (colon > rest) {
                r->user = pct_decode(rest, (size_t)(colon - rest));
                if (!r->user) return "the user has a bad %-escape or a NUL byte";
            }
            r->password = pct_decode(colon + 1, (size_t)(auth_end - colon - 1));
            if (!r->password) return "the password has a bad %-escape or a NUL byte";
            if (!r->password[0]) {
                free(r->password);
                r->password = NULL;
            }
        } else if (auth_end > rest) { /* redis://user@host: a user and no password, no AUTH */
            r->user = pct_decode(rest, (size_t)(auth_end - rest));
            if (!r->user) return "the user has a bad %-escape or a NUL byte";
        }
        hp = auth_end + 1;
    }
    const char *hp_end = slash ? slash : end;
    const char *port_at = NULL;
    if (hp < hp_end && *hp == '[') {
        const char *close = memchr(hp, ']', (size_t)(hp_end - hp));
        if (!close) return "an IPv6 address needs its closing ']'";
        r->host = pct_decode(hp + 1, (size_t)(close - hp - 1));
        if (close + 1 < hp_end) {
            if (close[1] != ':') return "junk after the IPv6 address";
            port_at = close + 2;
        }
    } else {
        const char *colon = memchr(hp, ':', (size_t)(hp_end - hp));
        r->host = pct_decode(hp, (size_t)((colon ? colon : hp_end) - hp));
        if (colon) port_at = colon + 1;
    }
    if (!r->host || !r->host[0]) return "it names no host";
    for (const char *s = r->host; *s; s++)
        if (*s == '/' || *s == '@' || *s == ' ' || *s == '?' || *s == '#')
            return "the host name has a character hosts do not have";
    long port = 6379;
    if (port_at && !parse_long(port_at, (size_t)(hp_end - port_at), 1, 65535, &port))
        return "the port must be a number from 1 to 65535";
    r->port = (int)port;
    if (slash && slash + 1 < end) {
        const char *q = strchr(slash + 1, '?');
        size_t dl = (size_t)((q ? q : end) - (slash + 1));
        if (q) return "query parameters are not supported in a redis:// URL";
        if (dl && !parse_long(slash + 1, dl, 0, 1000000, &r->db))
            return "the path must be a database number (/0, /1, ...)";
    }
    return NULL;
}

/* The URL for messages: as given, with the password replaced by "***". */
static char *mask_url(const char *url) {
    const char *scheme = strstr(url, "://");
    if (!scheme) return strdup(url);
    const char *rest = scheme + 3;
    const char *slash = strchr(rest, '/');
    const char *at = NULL;
    for (const char *s = rest; *s && (!slash || s < slash); s++)
        if (*s == '@') at = s;
    if (!at) return strdup(url);
    const char *colon = memchr(rest, ':', (size_t)(at - rest));
    if (!colon || colon + 1 == at) return strdup(url); /* no password */
    return format("%.*s***%s", (int)(colon + 1 - url), url, at);
}

/* ---- connections -------------------------------------------------------- */

/* hiredis's reason for a failed context, a timeout said as one. */
static const char *reason(const redisContext *c) {
    const char *why = c->errstr[0] ? c->errstr : "connection lost";
    if (strstr(why, "temporarily unavailable") || strstr(why, "timed out"))
        return "no answer within TIMEOUT_MS";
    return why;
}

/* A connected, authenticated context on the right database, or NULL and
 * *why (malloc'd). */
static redisContext *connect_one(kv_redis *r, char **why) {
    redisContext *c = r->path ? redisConnectUnixWithTimeout(r->path, r->tv)
                              : redisConnectWithTimeout(r->host, r->port, r->tv);
    if (!c) {
        *why = strdup("out of memory");
        return NULL;
    }
    if (c->err) {
        *why = strdup(reason(c));
        redisFree(c);
        return NULL;
    }
    if (redisSetTimeout(c, r->tv) != REDIS_OK) {
        *why = format("cannot set the timeout: %s", reason(c));
        redisFree(c);
        return NULL;
    }
    redisReply *rep = NULL;
    if (r->password) {
        rep = r->user ? redisCommand(c, "AUTH %s %s", r->user, r->password)
                      : redisCommand(c, "AUTH %s", r->password);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            *why = format("authentication failed: %s", rep ? rep->str : reason(c));
            goto fail;
        }
        freeReplyObject(rep);
    }
    if (r->db) {
        rep = redisCommand(c, "SELECT %ld", r->db);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            *why = format("SELECT %ld failed: %s", r->db, rep ? rep->str : reason(c));
            goto fail;
        }
        freeReplyObject(rep);
    }
    rep = redisCommand(c, "PING");
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        *why = format("PING failed: %s", rep ? rep->str : reason(c));
        goto fail;
    }
    freeReplyObject(rep);
    return c;
fail:
    if (rep) freeReplyObject(rep);
    redisFree(c);
    return NULL;
}

static int value_or(const char *s, long dflt, long min, long max, long *v) {
    if (!s) {
        *v = dflt;
        return 1;
    }
    return parse_long(s, strlen(s), min, max, v);
}

kv_redis *kvr_open(const char *url, const char *pool_size, const char *timeout_ms, char **err) {
    *err = NULL;
    if (sigpipe_guard < 0) {
        struct sigaction old;
        sigpipe_guard = sigaction(SIGPIPE, NULL, &old) != 0 || old.sa_handler != SIG_IGN;
    }
    long size, timeout;
    if (!value_or(pool_size, KVR_DEFAULT_POOL_SIZE, 1, KVR_MAX_POOL_SIZE, &size)) {
        *err = format("POOL_SIZE '%s' must be a number of connections from 1 to %d", pool_size,
                      KVR_MAX_POOL_SIZE);
        return NULL;
    }
    if (!value_or(timeout_ms, KVR_DEFAULT_TIMEOUT_MS, 1, KVR_MAX_TIMEOUT_MS, &timeout)) {
        *err = format("TIMEOUT_MS '%s' must be a number of milliseconds from 1 to %d", timeout_ms,
                      KVR_MAX_TIMEOUT_MS);
        return NULL;
    }
    kv_redis *r = calloc(1, sizeof *r);
    if (!r) goto nomem;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->freed, NULL);
    r->refs = 1;
    r->size = (int)size;
    r->timeout_ms = (int)timeout;
    r->tv.tv_sec = timeout / 1000;
    r->tv.tv_usec = (timeout % 1000) * 1000;
    r->shown = mask_url(url);
    r->slots = calloc((size_t)size, sizeof *r->slots);
    if (!r->shown || !r->slots) goto nomem;
    const char *bad = parse_url(r, url);
    if (bad) {
        *err = format("URL '%s' is not a Redis URL: %s", r->shown, bad);
        kvr_free(r);
        return NULL;
    }
    char *why = NULL;
    r->slots[0].ctx = connect_one(r, &why);
    if (!r->slots[0].ctx) {
        *err = format("cannot use Redis at URL '%s': %s", r->shown, why ? why : "out of memory");
        free(why);
        kvr_free(r);
        return NULL;
    }
    return r;
nomem:
    *err = strdup("out of memory");
    kvr_free(r);
    return NULL;
}

void kvr_ref(kv_redis *r) { __atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED); }

void kvr_unref(kv_redis *r) {
    if (r && __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) == 0) kvr_free(r);
}

/* Lends a slot; WASCC_ERROR with the message if none frees up in time or it
 * cannot connect. */
static int32_t acquire(kv_redis *r, const kv_op *op, kv_redis_conn *c, uint8_t **out,
                       size_t *out_len) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += r->timeout_ms / 1000;
    deadline.tv_nsec += (long)(r->timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->lock);
    kvr_slot *slot = NULL;
    for (;;) {
        kvr_slot *empty = NULL;
        for (int i = 0; i < r->size && !slot; i++) {
            if (r->slots[i].busy) continue;
            if (r->slots[i].ctx)
                slot = &r->slots[i];
            else if (!empty)
                empty = &r->slots[i];
        }
        if (!slot) slot = empty;
        if (slot) break;
        if (pthread_cond_timedwait(&r->freed, &r->lock, &deadline) == ETIMEDOUT) {
            pthread_mutex_unlock(&r->lock);
            return wpu_error(out, out_len,
                             KV_CAPABILITY " %s: all %d connections to Redis at '%s' stayed busy "
                                           "for TIMEOUT_MS (%d ms)",
                             op->name, r->size, r->shown, r->timeout_ms);
        }
    }
    slot->busy = 1;
    redisContext *stale = NULL;
    if (slot->ctx && slot->generation != r->generation) { /* another context broke: renew */
        stale = slot->ctx;
        slot->ctx = NULL;
    }
    unsigned generation = r->generation;
    pthread_mutex_unlock(&r->lock);
    if (stale) redisFree(stale);
    if (!slot->ctx) {
        char *why = NULL;
        slot->ctx = connect_one(r, &why);
        slot->generation = generation;
        if (!slot->ctx) {
            int32_t rc = wpu_error(out, out_len,
                                   KV_CAPABILITY " %s: cannot connect to Redis at '%s': %s",
                                   op->name, r->shown, why ? why : "out of memory");
            free(why);
            pthread_mutex_lock(&r->lock);
            slot->busy = 0;
            pthread_cond_signal(&r->freed);
            pthread_mutex_unlock(&r->lock);
            return rc;
        }
    }
    c->pool = r;
    c->slot = slot;
    c->ctx = slot->ctx;
    return WASCC_OK;
}

static void release(kv_redis_conn *c) {
    kv_redis *r = c->pool;
    kvr_slot *slot = c->slot;
    redisContext *broken = NULL;
    pthread_mutex_lock(&r->lock);
    if (c->ctx->err) { /* unusable: drop it and renew the others before their next use */
        broken = c->ctx;
        slot->ctx = NULL;
        r->generation++;
    }
    slot->busy = 0;
    pthread_cond_signal(&r->freed);
    pthread_mutex_unlock(&r->lock);
    if (broken) redisFree(broken);
}

int32_t kvr_run(kv_redis *r, const kv_op *op, const kv_request *req, uint8_t **out,
                size_t *out_len) {
    kv_redis_conn c;
    int32_t rc = acquire(r, op, &c, out, out_len);
    if (rc != WASCC_OK) return rc;
    rc = op->redis(&c, op, req, out, out_len);
    release(&c);
    return rc;
}

/* ---- commands ----------------------------------------------------------- */

/* One command; NULL on a connection failure, with the error in *out. */
static redisReply *command(kv_redis_conn *c, const kv_op *op, int argc, const char **argv,
                           const size_t *lens, uint8_t **out, size_t *out_len) {
    sigset_t pipe, old;
    if (sigpipe_guard) {
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe, &old);
    }
    redisReply *rep = redisCommandArgv(c->ctx, argc, argv, lens);
    if (sigpipe_guard) {
        sigset_t pending;
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE)) {
            struct timespec zero = {0, 0};
            sigtimedwait(&pipe, NULL, &zero);
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    if (!rep) {
        const char *why = reason(c->ctx);
        if (!c->ctx->err) c->ctx->err = REDIS_ERR_OTHER; /* never reuse it */
        wpu_error(out, out_len, KV_CAPABILITY " %s: Redis at '%s' failed: %s (%d ms timeout)",
                  op->name, c->pool->shown, why, c->pool->timeout_ms);
    }
    return rep;
}

static const char *type_of(kv_redis_conn *c, const char *key, size_t klen, char *buf,
                           size_t size) {
    const char *argv[2] = {"TYPE", key};
    size_t lens[2] = {4, klen};
    redisReply *rep = redisCommandArgv(c->ctx, 2, argv, lens);
    snprintf(buf, size, "%s",
             rep && (rep->type == REDIS_REPLY_STATUS || rep->type == REDIS_REPLY_STRING)
                 ? rep->str
                 : "unknown");
    if (rep) freeReplyObject(rep);
    return buf;
}

/* An error reply as the actor's error; WRONGTYPE names the first of the
 * keys argv[kfirst, klast) that is not of type `wanted`, as the in-memory
 * backend does. */
static int32_t error_reply(kv_redis_conn *c, const kv_op *op, redisReply *rep, const char *wanted,
                           int kfirst, int klast, const char **argv, const size_t *lens,
                           uint8_t **out, size_t *out_len) {
    int32_t rc;
    if (strncmp(rep->str, "WRONGTYPE", 9) == 0 && wanted) {
        char held[32];
        int culprit = kfirst;
        for (int i = kfirst; i < klast; i++) {
            type_of(c, argv[i], lens[i], held, sizeof held);
            if (strcmp(held, wanted) != 0 && strcmp(held, "none") != 0) {
                culprit = i;
                break;
            }
        }
        rc = kv_wrong_type(op, argv[culprit], lens[culprit], held, wanted, out, out_len);
    } else {
        rc = wpu_error(out, out_len, KV_CAPABILITY " %s: Redis at '%s' answered: %.*s", op->name,
                       c->pool->shown, (int)rep->len, rep->str);
    }
    freeReplyObject(rep);
    return rc;
}

/* Runs a command whose keys are argv[kfirst, klast) and which wants keys of
 * type `wanted` (NULL: any); a reply of another type than `expect` is an
 * error.  NULL with *rc and *out set on any failure. */
static redisReply *run(kv_redis_conn *c, const kv_op *op, const char *wanted, int expect,
                       int kfirst, int klast, int argc, const char **argv, const size_t *lens,
                       int32_t *rc, uint8_t **out, size_t *out_len) {
    redisReply *rep = command(c, op, argc, argv, lens, out, out_len);
    if (!rep) {
        *rc = WASCC_ERROR;
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        *rc = error_reply(c, op, rep, wanted, kfirst, klast, argv, lens, out, out_len);
        return NULL;
    }
    if (rep->type != expect) {
        freeReplyObject(rep);
        c->ctx->err = REDIS_ERR_PROTOCOL; /* out of step with the server: drop it */
        *rc = wpu_error(out, out_len, KV_CAPABILITY " %s: Redis at '%s' answered an unexpected "
                                                    "reply type %d",
                        op->name, c->pool->shown, rep->type);
        return NULL;
    }
    *rc = WASCC_OK;
    return rep;
}

static int32_t reply_values(redisReply *rep, uint8_t **out, size_t *out_len) {
    wmp_writer w;
    wpu_writer(&w);
    wmp_write_map(&w, 1);
    wmp_write_cstr(&w, "values");
    wmp_write_array(&w, (uint32_t)rep->elements);
    for (size_t i = 0; i < rep->elements; i++) {
        redisReply *e = rep->element[i];
        if (e->type == REDIS_REPLY_STRING)
            wmp_write_str(&w, e->str, e->len);
        else
            wmp_write_str(&w, "", 0);
    }
    freeReplyObject(rep);
    return wpu_finish(&w, out, out_len);
}

/* One-key command answering an integer, replied as {field: n}. */
static int32_t key_value_int(kv_redis_conn *c, const kv_op *op, const kv_request *r,
                             const char *cmd, const char *wanted, const char *field,
                             uint8_t **out, size_t *out_len) {
    const char *argv[3] = {cmd, r->key, r->value};
    size_t lens[3] = {strlen(cmd), r->key_len, r->value_len};
    int32_t rc;
    redisReply *rep =
        run(c, op, wanted, REDIS_REPLY_INTEGER, 1, 2, 3, argv, lens, &rc, out, out_len);
    if (!rep) return rc;
    long long n = rep->integer;
    freeReplyObject(rep);
    return kv_reply_one_int(field, n, out, out_len);
}

int32_t kvr_get(kv_redis_conn *c, const kv_op *op, const kv_request *r, uint8_t **out,
                size_t *out_len) {
    const char *argv[2] = {"GET", r->key};
    size_t lens[2] = {3, r->key_len};
    redisReply *rep = command(c, op, 2, argv, lens, out, out_len);
    if (!rep) return WASCC_ERROR;
    int32_t rc;
    if (rep->type == REDIS_REPLY_STRING)
        rc = kv_reply_value_exists(rep->str, rep->len, 1, out, out_len);
    else if (rep->type == REDIS_REPLY_NIL ||
             (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "WRONGTYPE", 9) == 0))
        rc = kv_reply_value_exists("", 0, 0, out, out_len); /* missing, or not a string */
    else if (rep->type == REDIS_REPLY_ERROR)
        return error_reply(c, op, rep, NULL, 1, 2, argv, lens, out, out_len);
    else
        rc = wpu_error(out, out_len, KV_CAPABILITY " %s: Redis answered reply type %d", op->name,
                       rep->type);
    freeReplyObject(rep);
    return rc;
}

int32_t kvr_set(kv_redis_conn *c, const kv_op *op, const kv_request *r, uint8_t **out,
                size_t *out_len) {
    char ttl[24];
    int n = snprintf(ttl, sizeof ttl, "%lld", (long long)r->expires);
    const char *argv[5] = {"SET", r->key, r->value, "EX", ttl};
    size_t lens[5] = {3, r->key_len, r->value_len, 2, (size_t)n};
    int32_t rc;
    redisReply *rep = run(c, op, NULL, REDIS_REPLY_STATUS, 1, 2, r->expires > 0 ? 5 : 3, argv,
                          lens, &rc, out, out_len);
    if (!rep) return rc;
    freeReplyObject(rep);
    return kv_reply_one_str("value", r->value, r->value_len, out, out_len);
}

static int32_t delete_key(kv_redis_conn *c, const kv_op *op, const kv_request *r, uint8_t **out,
                          size_t *out_len) {
    const char *argv[2] = {"DEL", r->key};
    size_t lens[2] = {3, r->key_len};
    int32_t rc;
    redisReply *rep = run(c, op, NULL, REDIS_REPLY_INTEGER, 1, 2, 2, argv, lens, &rc, out, out_len);
    if (!rep) return rc;
    freeReplyObject(rep);
    return kv_reply_one_str("key", r->key, r->key_len, out, out_len);
}

int32_t kvr_del(kv_redis_conn *c, const kv_op *op, const kv_request *r, uint8_t **out,
                size_t *out_len) {
    return delete_key(c, op, r, out, out_len);
}

/* INCRBY, refused (and undone) when the result leaves i32, with the in-memory
 * backend's errors: {0, type} wrong type, {1, err} not an integer, {2, before}
 * out of range, {3, n} done. */
static const char add_script[] =
    "local t = redis.call('TYPE', KEYS[1])['ok']\n"
    "if t ~= 'none' and t ~= 'string' then return {0, t} end\n"
    "local before = redis.call('GET', KEYS[1])\n"
    "local v = redis.pcall('INCRBY', KEYS[1], ARGV[1])\n"
    "if type(v) == 'table' then\n"
    "  if string.find(v['err'], 'overflow', 1, true) then return {2, before} end\n"
    "  return {1, v['err']}\n"
    "end\n"
    "if v > 2147483647 or v < -2147483648 then\n"
    "  if t == 'none' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], before, "
    "'KEEPTTL') end\n"
    "  return {2, before or '0'}\n"
    "end\n"
    "return {3, v}\n";

int32_t kvr_add(kv_redis_conn *c, const kv_op *op, const kv_request *r, uint8_t **out,
                size_t *out_len) {
    char incr[24];
    int n = snprintf(incr, sizeof incr, "%lld", (long long)r->ivalue);
    const char *argv[5] = {"EVAL", add_script, "1", r->key, incr};
    size_t lens[5] = {4, sizeof add_script - 1, 1, r->key_len, (size_t)n};
    int32_t rc;
    redisReply *rep = run(c, op, NULL, REDIS_REPLY_ARRAY, 3, 4, 5, argv, lens, &rc, out, out_len);
    if (!rep) return rc;
    if (rep->elements != 2 || rep->element[0]->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(rep);
        return wpu_error(out, out_len, KV_CAPABILITY " %s: Redis answered an unexpected reply",
                         op->name);
    }
    redisReply *v = rep->element[1];
    char text[64];
    snprintf(text, sizeof text, "%.*s", v->type == REDIS_REPLY_STRING ? (int)v->len : 0,
             v->type == REDIS_REPLY_STRING ? v->str : "");
    switch (rep->element[0]->integer) {
    case 0: rc = kv_wrong_type(op, r->key, r->key_len, text, "string", out, out_len); break;
    case 1: rc = kv_not_an_integer(op, r->key, r->key_len, out, out_len); break;
    case 2: rc = kv_add_overflow(op, text, r->ivalue, r->key, r->key_len, out, out_len); break;
    default:
        rc = kv_reply_one_int("value", v->type == REDIS_REPLY_INTEGER ? v->integer : 0, out,
                              out_len);
    }
    freeReplyObject(rep);
    return rc;
}

int32_t kvr_push(kv_redis_conn *c, const kv_op *op, const kv_request *r, uint8_t **out,
                 size_t *out_len) {
    return key_value_int(c, op, r, "LPUSH", "list", "newCount", out, out_len);
}

int32_t kvr_list_item_delete(kv_redis_conn *c, const kv_op *op, const kv_request *r,
                             uint8_t **out, size_t *out_len) {
    const char *argv[4] = {"LREM", r->key, "0", r->value};
    size_t lens[4] = {4, r->key_len, 1, r->value_len};
    int32_t rc;
    redisReply *rep =
        run(c, op, "list", REDIS_REPLY_INTEGER, 1, 2, 4, argv, lens, &rc, out, out_len);
    if (!rep) return rc;
    long long n = rep->integer;
    freeReplyObject(rep);
    return kv_reply_one_int("newCount", n, out, out_len);
}

int32_t kvr_range(kv_redis_conn *c, const kv_op *op, const kv_request *r, uint8_t **out,
                  size_t *out_len) {
    char start[24], stop[24];
    int a = snprintf(start, sizeof start, "%lld", (long long)r->start);
    int b = snprintf(stop, sizeof stop, "%lld", (long long)r->stop);
    const char *argv[4] = {"LRANGE", r->key, start, stop};
    size_t lens[4] = {6, r->key_len, (size_t)a, (size_t)b};
    int32_t rc;
    redisReply *rep =
        run(c, op, "list", REDIS_REPLY_ARRAY, 1, 2, 4, argv, lens, &rc, out, out_len);
    return rep ? reply_values(rep, out, out_len) : rc;
}

int32_t kvr_set_add(kv_redis_conn *c, const kv_op *op, const kv_request *r, uint8_t **out,
                    size_t *out_len) {
    return key_value_int(c, op, r, "SADD", "set", "newCount", out, out_len);
}

int32_t kvr_set_remove(kv_redis_conn *c, const kv_op *op, const kv_request *r, uint8_t **out,
                       size_t *out_len) {
    return key_value_int(c, op, r, "SREM", "set", "newCount", out, out_len);
}

static int32_t set_of_keys(kv_redis_conn *c, const kv_op *op, const kv_request *r,
                           const char *cmd, uint8_t **out, size_t *out_len) {
    if (r->n_keys == 0) { /* Redis refuses SUNION with no keys; the contract answers [] */
        wmp_writer w;
        wpu_writer(&w);
        wmp_write_map(&w, 1);
        wmp_write_cstr(&w, "values");
        wmp_write_array(&w, 0);
        return wpu_finish(&w, out, out_len);
    }
    size_t argc = (size_t)r->n_keys + 1;
    const char **argv = malloc(argc * sizeof *argv);
    size_t *lens = malloc(argc * sizeof *lens);
    if (!argv || !lens) {
        free(argv);
        free(lens);
        return wpu_error(out, out_len, KV_CAPABILITY " %s: out of memory", op->name);
    }
    argv[0] = cmd;
    lens[0] = strlen(cmd);
    wmp_reader rd = r->keys;
    for (uint32_t i = 0; i < r->n_keys; i++) {
        uint32_t kl = 0;
        wmp_read_str(&rd, &argv[i + 1], &kl); /* validated by the parser */
        lens[i + 1] = kl;
    }
    int32_t rc;
    redisReply *rep = run(c, op, "set", REDIS_REPLY_ARRAY, 1, (int)argc, (int)argc, argv, lens,
                          &rc, out, out_len);
    free(argv);
    free(lens);
    return rep ? reply_values(rep, out, out_len) : rc;
}

int32_t kvr_set_union(kv_redis_conn *c, const kv_op *op, const kv_request *r, uint8_t **out,
                      size_t *out_len) {
    return set_of_keys(c, op, r, "SUNION", out, out_len);
}

int32_t kvr_set_intersection(kv_redis_conn *c, const kv_op *op, const kv_request *r,
                             uint8_t **out, size_t *out_len) {
    return set_of_keys(c, op, r, "SINTER", out, out_len);
}

int32_t kvr_set_query(kv_redis_conn *c, const kv_op *op, const kv_request *r, uint8_t **out,
                      size_t *out_len) {
    const char *argv[2] = {"SMEMBERS", r->key};
    size_t lens[2] = {8, r->key_len};
    int32_t rc;
    redisReply *rep = run(c, op, "set", REDIS_REPLY_ARRAY, 1, 2, 2, argv, lens, &rc, out, out_len);
    return rep ? reply_values(rep, out, out_len) : rc;
}

int32_t kvr_key_exists(kv_redis_conn *c, const kv_op *op, const kv_request *r, uint8_t **out,
                       size_t *out_len) {
    const char *argv[2] = {"EXISTS", r->key};
    size_t lens[2] = {6, r->key_len};
    int32_t rc;
    redisReply *rep = run(c, op, NULL, REDIS_REPLY_INTEGER, 1, 2, 2, argv, lens, &rc, out, out_len);
    if (!rep) return rc;
    int exists = rep->integer > 0;
    freeReplyObject(rep);
    return kv_reply_value_exists("", 0, exists, out, out_len);
}
