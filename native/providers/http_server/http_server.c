/*
 * http_server.c - wascc:http_server in C: real HTTP/1.1 in front of actors,
 * the native twin of the Python provider (capabilities/http_server/), with
 * the same binding values, the same requests as actors see them and the same
 * status codes.  The Python one stays as the fallback (README, http_server).
 *
 * One listener per bound actor.  Every request becomes HandleRequest with an
 * HttpRequest {method, path, queryString, header, body} (CONTRACTS section 3;
 * `header` maps lower-cased names to values, repeated headers joined with
 * ", ", Cookie with "; "; values are ISO-8859-1 text; trailers are not
 * included; path and queryString are the target split at "?", not decoded,
 * an absolute-form target reduced to its path), dispatched from the server's
 * own threads; the actor's HttpResponse is written back with a Content-Length
 * this server computes (the actor's Content-Length, Transfer-Encoding,
 * Connection and other hop-by-hop headers are dropped, invalid header names
 * or values too; its Content-Type and other headers are kept).
 *
 * Binding values (keys case-insensitive; bounds and wording as the Python
 * provider's settings.py):
 *   PORT (required; 0 picks a free port: ServerStatus tells which),
 *   ADDRESS or ADDR (127.0.0.1), MAX_HEADER_BYTES (65536, >= 256),
 *   MAX_BODY_BYTES (10485760), MAX_CONNECTIONS (1024, 1..1000000),
 *   KEEPALIVE_TIMEOUT (15 s), REQUEST_TIMEOUT (30 s), DRAIN_TIMEOUT (10 s),
 *   ACCESS_LOG (false; one record per request, kept here (at most 100,000
 *   records) until the host reads them with TakeLog and logs them, off the
 *   request path, on the ...http_server.access logger).  Every failed call
 *   is kept the same way with its status and the dispatcher's words (the
 *   detail the client is not told), and logged by the host as a warning.
 *
 * Status codes this server produces: 400 a malformed request (then it
 * closes), 408 a request not received within REQUEST_TIMEOUT, 413 a body over
 * MAX_BODY_BYTES (a Content-Length or a chunk size over the limit is refused
 * as soon as it is read), 417 an Expect other than 100-continue, 431 a head
 * over MAX_HEADER_BYTES, 505 an HTTP version other than 1.0/1.1; 500 the
 * actor failed, 502 its answer is not an HttpResponse (or its status is not
 * 200-599), 503 (with Retry-After and Connection: close) the host is
 * draining, the actor is gone, busy, or being unbound, or too many
 * connections, 504 the actor did not answer within its deadline.
 *
 * Dispatch errors.  The C ABI hands back an error as text only.  This server
 * reads the kind of failure from the text's first word, the name of the wascc
 * error (wascc/errors.py) followed by ": ":
 *   HostStopped                                  503 "the host is shutting down"
 *   InstancesBusy                                503 "the actor is busy"
 *   NotFound, ActorRetired, NotBound,
 *   ProviderError (and its kinds)                503 "the actor is not available"
 *   InvocationTimeout                            504
 *   anything else                                500 (the detail is not sent)
 * The host names the kind on every path a dispatch takes (its Python
 * dispatcher and the data plane in C; provider.h, section 4).
 *
 * Operations: HandleRequest (provider -> actor); for the host only,
 * ServerStatus ({listeners: [{actor, address, port, connections}],
 * responses: {code: n}}, read for address() and stats()) and TakeLog (the
 * access and failure records since the last call).
 *
 * Why not a library server.  libmicrohttpd (Debian 0.9.75) was the first
 * choice.  Answering a fixed response (benchmarks/mhd_hello.c, one thread on
 * one CPU) it served 30-46k requests/s where nginx served 94-147k and this
 * server, with a C dispatcher, 168-208k (bench_http_floor.py).  And it
 * cannot give the behaviour the tests ask of an http_server: its
 * own error bodies and no hook for them, bare LF accepted, no early 413 on a
 * chunk size, connections over the limit closed without a 503, no eviction
 * of idle connections, one inactivity timeout (a slowloris sending a byte a
 * second is never cut).  llhttp is not packaged as a C library in Debian.
 * So the parser (parse.c) and the epoll server (server.c) are ours, small,
 * and strict; see README for the measurements.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hs.h"
#include "wpu.h"

#define MAX_CONNECTIONS_CAP 1000000

static const wpu_operation OPERATIONS[] = {
    {HS_OP, 0, "an HTTP request for the actor: HttpRequest -> HttpResponse"},
    {"ServerStatus", 1,
     "host only: {listeners: [{actor, address, port, connections}], responses: {code: n}}"},
    {"TakeLog", 1,
     "host only: {entries: [access or failure records], dropped: n}, then cleared"},
};

static const wpu_descriptor_t DESCRIPTOR = {
    .id = HS_CAPABILITY,
    .name = "wascc native HTTP server",
    .version = "0.1.0",
    .revision = 1,
    .long_description = "HTTP/1.1 server in C (epoll): one listener per bound actor",
    .operations = OPERATIONS,
    .n_operations = sizeof OPERATIONS / sizeof OPERATIONS[0],
};

typedef struct {
    char *actor;
    hs_listener *listener;
} hs_binding;

struct hs_server {
    void *state; /* the wpu state, for wpu_dispatcher */
    pthread_mutex_t lock;      /* bindings */
    pthread_mutex_t bind_lock; /* one BindActor / RemoveActor at a time */
    hs_binding *bindings;
    size_t n_bindings;
    uint64_t counts[600]; /* responses by status code (__atomic) */
    int stopped;
    pthread_mutex_t log_lock; /* the access log records not read yet */
    hs_buf log;               /* msgpack: one [actor, method, path, status, us] each */
    uint32_t log_count;
    uint64_t log_dropped;
};

#define LOG_MAX_RECORDS 100000
#define LOG_MAX_BYTES (16u << 20)

typedef struct {
    hs_server *srv;
} hs_state;

/* ---- counters and dispatch ----------------------------------------------------- */

void hs_count(hs_server *srv, int code) {
    if (code >= 0 && code < 600) __atomic_add_fetch(&srv->counts[code], 1, __ATOMIC_RELAXED);
}

/* Queue one log record (an encoded msgpack array) for the host's TakeLog. */
static void keep_record(hs_server *srv, wmp_writer *w) {
    pthread_mutex_lock(&srv->log_lock);
    if (w->err || srv->log_count >= LOG_MAX_RECORDS || srv->log.len > LOG_MAX_BYTES ||
        hs_buf_put(&srv->log, w->buf, w->len) != 0)
        srv->log_dropped++;
    else
        srv->log_count++;
    pthread_mutex_unlock(&srv->log_lock);
    free(w->buf);
}

void hs_access(hs_server *srv, const char *actor, const char *method, const hs_buf *path,
               int status, uint64_t micros) {
    wmp_writer w;
    wpu_writer(&w);
    wmp_write_array(&w, 5);
    wmp_write_cstr(&w, actor);
    wmp_write_cstr(&w, method);
    wmp_write_str(&w, (const char *)path->p, path->len);
    wmp_write_uint(&w, (uint64_t)status);
    wmp_write_uint(&w, micros);
    keep_record(srv, &w);
}

/* A failed call: [actor, status, what the client was told, the dispatcher's words]. */
static void failure_record(hs_server *srv, const char *actor, const hs_reply *reply,
                           const uint8_t *words, size_t len) {
    wmp_writer w;
    wpu_writer(&w);
    wmp_write_array(&w, 4);
    wmp_write_cstr(&w, actor);
    wmp_write_uint(&w, (uint64_t)reply->code);
    /* the error body without its "<code> <phrase>: " and newline */
    const char *text = reply->text, *sep = strstr(text, ": ");
    text = sep ? sep + 2 : text;
    size_t n = strlen(text);
    wmp_write_str(&w, text, n && text[n - 1] == '\n' ? n - 1 : n);
    wmp_write_str(&w, (const char *)words, len > 4096 ? 4096 : len);
    keep_record(srv, &w);
}

/* TakeLog: {entries: [...], dropped: n}, every record kept since the last call
 * (access: [actor, method, path, status, us]; failure: [actor, status, text,
 * words]); clears them. */
static int32_t take_log_reply(hs_server *srv, uint8_t **out, size_t *out_len) {
    wmp_writer w;
    wpu_writer(&w);
    pthread_mutex_lock(&srv->log_lock);
    wmp_write_map(&w, 2);
    wmp_write_cstr(&w, "entries");
    wmp_write_array(&w, srv->log_count);
    wmp_put(&w, srv->log.p, srv->log.len);
    wmp_write_cstr(&w, "dropped");
    wmp_write_uint(&w, srv->log_dropped);
    srv->log.len = 0;
    srv->log_count = 0;
    srv->log_dropped = 0;
    if (srv->log.cap > (1u << 20)) hs_buf_free(&srv->log);
    pthread_mutex_unlock(&srv->log_lock);
    return wpu_finish(&w, out, out_len);
}

static int kind_is(const uint8_t *msg, size_t len, const char *kind) {
    size_t n = strlen(kind);
    return len > n + 1 && memcmp(msg, kind, n) == 0 && msg[n] == ':';
}

void hs_invoke(hs_server *srv, const char *actor, const hs_buf *payload, hs_reply *reply,
               uint8_t **raw, size_t *raw_len) {
    *raw = NULL;
    *raw_len = 0;
    const wascc_dispatcher *d = wpu_dispatcher(srv->state);
    if (!d) {
        hs_error_reply(reply, 503, "the server is not attached to a host");
        return;
    }
    uint8_t *out = NULL;
    size_t out_len = 0;
    int32_t rc = d->dispatch(d->host_data, actor, HS_OP, payload->p, payload->len, &out,
                             &out_len);
    if (rc == WASCC_OK) {
        hs_actor_reply(reply, out ? out : (const uint8_t *)"", out_len);
        *raw = out;
        *raw_len = out_len;
        if (reply->code == 502 && reply->body == (const uint8_t *)reply->text)
            failure_record(srv, actor, reply, (const uint8_t *)"", 0);
        return;
    }
    static const char *const unavailable[] = {
        "NotFound", "ActorRetired", "NotBound", "ProviderError", "ProviderCrashed",
        "NativeLoadError", "ProviderArchiveError"};
    const uint8_t *m = out ? out : (const uint8_t *)"";
    if (kind_is(m, out_len, "HostStopped")) {
        hs_error_reply(reply, 503, "the host is shutting down");
    } else if (kind_is(m, out_len, "InstancesBusy")) {
        hs_error_reply(reply, 503, "the actor is busy");
    } else if (kind_is(m, out_len, "InvocationTimeout")) {
        hs_error_reply(reply, 504, "the actor did not answer in time");
    } else {
        hs_error_reply(reply, 500, "the actor failed to handle the request");
        for (size_t i = 0; i < sizeof unavailable / sizeof *unavailable; i++)
            if (kind_is(m, out_len, unavailable[i])) {
                hs_error_reply(reply, 503, "the actor is not available");
                break;
            }
    }
    failure_record(srv, actor, reply, m, out_len);
    if (out) d->free_buffer(d->host_data, out);
}

void hs_release(hs_server *srv, uint8_t *raw) {
    if (!raw) return;
    const wascc_dispatcher *d = wpu_dispatcher(srv->state);
    if (d) d->free_buffer(d->host_data, raw);
}

/* ---- binding values -------------------------------------------------------------- */

static char *trimmed(const char *s, char *buf, size_t n) {
    while (*s && isspace((unsigned char)*s)) s++;
    size_t len = strlen(s);
    while (len && isspace((unsigned char)s[len - 1])) len--;
    if (len >= n) len = n - 1;
    memcpy(buf, s, len);
    buf[len] = 0;
    return buf;
}

static const char *value_of(const wpu_config *cfg, const char *key) {
    const char *found = NULL;
    for (size_t i = 0; i < cfg->n; i++) {
        if (strncmp(cfg->keys[i], "__wascc_", 8) == 0) continue;
        if (strcasecmp(cfg->keys[i], key) == 0) found = cfg->values[i];
    }
    return found;
}

/* 0, or an error written to err. */
static int number(const wpu_config *cfg, const char *key, double def, int integer, double low,
                  const char *low_text, double high, const char *who, double *out, char *err,
                  size_t err_len) {
    const char *raw = value_of(cfg, key);
    char buf[128];
    if (!raw || !*trimmed(raw, buf, sizeof buf)) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    double v;
    if (integer) {
        long long x = strtoll(buf, &end, 10);
        v = (double)x;
        if (errno == ERANGE) v = buf[0] == '-' ? -INFINITY : INFINITY;
    } else {
        v = strtod(buf, &end);
    }
    if (*end || end == buf || isnan(v) || strlen(raw) >= sizeof buf) {
        snprintf(err, err_len, "%s: %s='%s' for %s is not %s", HS_CAPABILITY, key, raw, who,
                 integer ? "an integer" : "a number");
        return -1;
    }
    if (v < low) {
        snprintf(err, err_len, "%s: %s='%s' for %s must be >= %s", HS_CAPABILITY, key, raw, who,
                 low_text);
        return -1;
    }
    if (v > high) {
        snprintf(err, err_len, "%s: %s='%s' for %s must be <= %.0f", HS_CAPABILITY, key, raw,
                 who, high);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_settings(const wpu_config *cfg, hs_settings *s, char *err, size_t err_len) {
    memset(s, 0, sizeof *s);
    char who[160];
    snprintf(who, sizeof who, "actor %s", cfg->module);
    char buf[300];
    const char *port = value_of(cfg, "PORT");
    if (!port || !*trimmed(port, buf, sizeof buf)) {
        snprintf(err, err_len, "%s: the binding for %s needs a PORT value", HS_CAPABILITY, who);
        return -1;
    }
    double v;
    if (number(cfg, "PORT", 0, 1, 0, "0", INFINITY, who, &v, err, err_len) != 0) return -1;
    if (v > 65535) {
        snprintf(err, err_len, "%s: PORT=%.0f for %s is not a TCP port", HS_CAPABILITY, v, who);
        return -1;
    }
    s->port = (int)v;
    const char *address = value_of(cfg, "ADDRESS");
    if (!address || !*address) address = value_of(cfg, "ADDR");
    if (!address) address = "";
    trimmed(address, buf, sizeof buf);
    if (strlen(buf) >= sizeof s->address) {
        snprintf(err, err_len, "%s: ADDRESS for %s is too long", HS_CAPABILITY, who);
        return -1;
    }
    strcpy(s->address, *buf ? buf : "127.0.0.1"); /* its length was checked above */
    const char *flag = value_of(cfg, "ACCESS_LOG");
    trimmed(flag ? flag : "", buf, sizeof buf);
    for (char *c = buf; *c; c++) *c = (char)tolower((unsigned char)*c);
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"", "0", "false", "no", "off"};
    int known = 0;
    for (size_t i = 0; i < 4; i++)
        if (strcmp(buf, yes[i]) == 0) known = s->access_log = 1;
    for (size_t i = 0; i < 5; i++)
        if (strcmp(buf, no[i]) == 0) known = 1;
    if (!known) {
        snprintf(err, err_len, "%s: ACCESS_LOG='%s' for %s is not true or false", HS_CAPABILITY,
                 buf, who);
        return -1;
    }
    if (number(cfg, "MAX_HEADER_BYTES", 65536, 1, 256, "256", 1e12, who, &v, err, err_len))
        return -1;
    s->max_header_bytes = (size_t)v;
    if (number(cfg, "MAX_BODY_BYTES", 10485760, 1, 0, "0", 1e15, who, &v, err, err_len))
        return -1;
    s->max_body_bytes = (size_t)v;
    if (number(cfg, "MAX_CONNECTIONS", 1024, 1, 1, "1", MAX_CONNECTIONS_CAP, who, &v, err,
               err_len))
        return -1;
    s->max_connections = (size_t)v;
    if (number(cfg, "KEEPALIVE_TIMEOUT", 15, 0, 0.001, "0.001", INFINITY, who,
               &s->keepalive_timeout, err, err_len) ||
        number(cfg, "REQUEST_TIMEOUT", 30, 0, 0.001, "0.001", INFINITY, who,
               &s->request_timeout, err, err_len) ||
        number(cfg, "DRAIN_TIMEOUT", 10, 0, 0, "0", INFINITY, who, &s->drain_timeout, err,
               err_len))
        return -1;
    if (s->max_header_bytes > ((size_t)1 << 30)) s->max_header_bytes = (size_t)1 << 30;
    return 0;
}

static int same_settings(const hs_settings *a, const hs_settings *b) {
    return a->port == b->port && strcmp(a->address, b->address) == 0 &&
           a->max_header_bytes == b->max_header_bytes && a->max_body_bytes == b->max_body_bytes &&
           a->max_connections == b->max_connections &&
           a->keepalive_timeout == b->keepalive_timeout &&
           a->request_timeout == b->request_timeout && a->drain_timeout == b->drain_timeout &&
           a->access_log == b->access_log;
}

/* ---- the provider -------------------------------------------------------------------- */

static hs_binding *find(hs_server *srv, const char *actor) {
    for (size_t i = 0; i < srv->n_bindings; i++)
        if (strcmp(srv->bindings[i].actor, actor) == 0) return &srv->bindings[i];
    return NULL;
}

static int hs_init(void *state) {
    hs_state *st = state;
    st->srv = calloc(1, sizeof *st->srv);
    if (!st->srv) return -1;
    st->srv->state = state;
    pthread_mutex_init(&st->srv->lock, NULL);
    pthread_mutex_init(&st->srv->bind_lock, NULL);
    pthread_mutex_init(&st->srv->log_lock, NULL);
    return 0;
}

static int32_t bind_actor(void *state, const wpu_config *cfg, uint8_t **out, size_t *out_len) {
    hs_server *srv = ((hs_state *)state)->srv;
    hs_settings s;
    char err[600];
    if (parse_settings(cfg, &s, err, sizeof err) != 0) return wpu_error(out, out_len, "%s", err);
    pthread_mutex_lock(&srv->bind_lock);
    if (srv->stopped) {
        pthread_mutex_unlock(&srv->bind_lock);
        return wpu_error(out, out_len, "%s: the provider is stopped", HS_CAPABILITY);
    }
    pthread_mutex_lock(&srv->lock);
    hs_binding *b = find(srv, cfg->module);
    hs_listener *old = b ? b->listener : NULL;
    pthread_mutex_unlock(&srv->lock);
    if (old && same_settings(hs_listener_settings(old), &s)) {
        pthread_mutex_unlock(&srv->bind_lock);
        return wpu_empty(out, out_len);
    }
    int inherit = -1;
    if (old && s.port != 0 && s.port == hs_listener_port(old) &&
        strcmp(s.address, hs_listener_settings(old)->address) == 0 && hs_listener_fd(old) >= 0)
        inherit = dup(hs_listener_fd(old));
    hs_listener *l = hs_listener_start(srv, cfg->module, &s, inherit, err, sizeof err);
    if (!l) {
        pthread_mutex_unlock(&srv->bind_lock);
        return wpu_error(out, out_len, "%s", err);
    }
    pthread_mutex_lock(&srv->lock);
    b = find(srv, cfg->module);
    int failed = 0;
    if (b) {
        b->listener = l;
    } else {
        hs_binding *grown = realloc(srv->bindings, (srv->n_bindings + 1) * sizeof *grown);
        char *actor = strdup(cfg->module);
        if (grown) srv->bindings = grown;
        if (!grown || !actor) {
            free(actor);
            failed = 1;
        } else {
            srv->bindings[srv->n_bindings].actor = actor;
            srv->bindings[srv->n_bindings].listener = l;
            srv->n_bindings++;
        }
    }
    pthread_mutex_unlock(&srv->lock);
    if (failed) {
        hs_listener_close(l);
        pthread_mutex_unlock(&srv->bind_lock);
        return wpu_error(out, out_len, "%s: out of memory", HS_CAPABILITY);
    }
    if (old) hs_listener_close(old);
    pthread_mutex_unlock(&srv->bind_lock);
    return wpu_empty(out, out_len);
}

static int32_t remove_actor(void *state, const wpu_config *cfg, uint8_t **out, size_t *out_len) {
    hs_server *srv = ((hs_state *)state)->srv;
    pthread_mutex_lock(&srv->bind_lock);
    pthread_mutex_lock(&srv->lock);
    hs_listener *l = NULL;
    hs_binding *b = find(srv, cfg->module);
    if (b) {
        l = b->listener;
        free(b->actor);
        *b = srv->bindings[--srv->n_bindings];
    }
    pthread_mutex_unlock(&srv->lock);
    if (l) hs_listener_close(l);
    pthread_mutex_unlock(&srv->bind_lock);
    return wpu_empty(out, out_len);
}

static int32_t health(void *state, uint8_t **out, size_t *out_len) {
    hs_server *srv = ((hs_state *)state)->srv;
    pthread_mutex_lock(&srv->lock);
    size_t n = srv->n_bindings, dead = 0;
    for (size_t i = 0; i < n; i++) dead += !hs_listener_alive(srv->bindings[i].listener);
    int stopped = srv->stopped;
    pthread_mutex_unlock(&srv->lock);
    char msg[96];
    if (stopped) return wpu_health(out, out_len, 0, "stopped");
    if (dead) {
        snprintf(msg, sizeof msg, "%zu listener(s) stopped", dead);
        return wpu_health(out, out_len, 0, msg);
    }
    snprintf(msg, sizeof msg, "%zu listener(s)", n);
    return wpu_health(out, out_len, 1, msg);
}

static int32_t call(void *state, const wpu_call *c, uint8_t **out, size_t *out_len) {
    hs_server *srv = ((hs_state *)state)->srv;
    if (strcmp(c->actor, WPU_SYSTEM) != 0)
        return wpu_error(out, out_len, "%s: %s is for the host only", HS_CAPABILITY, c->op);
    if (strcmp(c->op, "TakeLog") == 0) return take_log_reply(srv, out, out_len);
    wmp_writer w;
    wpu_writer(&w);
    wmp_write_map(&w, 2);
    wmp_write_cstr(&w, "listeners");
    pthread_mutex_lock(&srv->lock);
    wmp_write_array(&w, (uint32_t)srv->n_bindings);
    for (size_t i = 0; i < srv->n_bindings; i++) {
        hs_listener *l = srv->bindings[i].listener;
        wmp_write_map(&w, 4);
        wmp_write_cstr(&w, "actor");
        wmp_write_cstr(&w, srv->bindings[i].actor);
        wmp_write_cstr(&w, "address");
        wmp_write_cstr(&w, hs_listener_host(l));
        wmp_write_cstr(&w, "port");
        wmp_write_uint(&w, (uint64_t)hs_listener_port(l));
        wmp_write_cstr(&w, "connections");
        wmp_write_uint(&w, hs_listener_connections(l));
    }
    pthread_mutex_unlock(&srv->lock);
    uint32_t codes = 0;
    for (int i = 0; i < 600; i++) codes += __atomic_load_n(&srv->counts[i], __ATOMIC_RELAXED) != 0;
    wmp_write_cstr(&w, "responses");
    wmp_write_map(&w, codes);
    for (int i = 0; i < 600 && codes; i++) {
        uint64_t n = __atomic_load_n(&srv->counts[i], __ATOMIC_RELAXED);
        if (!n) continue;
        wmp_write_uint(&w, (uint64_t)i);
        wmp_write_uint(&w, n);
        codes--;
    }
    return wpu_finish(&w, out, out_len);
}

static void hs_stop(void *state) {
    hs_server *srv = ((hs_state *)state)->srv;
    pthread_mutex_lock(&srv->bind_lock);
    pthread_mutex_lock(&srv->lock);
    srv->stopped = 1;
    hs_binding *bindings = srv->bindings;
    size_t n = srv->n_bindings;
    srv->bindings = NULL;
    srv->n_bindings = 0;
    pthread_mutex_unlock(&srv->lock);
    double drain = 0;
    for (size_t i = 0; i < n; i++) {
        hs_listener_begin_close(bindings[i].listener);
        drain = fmax(drain, hs_listener_settings(bindings[i].listener)->drain_timeout);
    }
    double deadline = hs_now() + drain;
    for (size_t i = 0; i < n; i++) {
        hs_listener_finish_close(bindings[i].listener, deadline);
        free(bindings[i].actor);
    }
    free(bindings);
    pthread_mutex_unlock(&srv->bind_lock);
}

static void hs_destroy(void *state) {
    hs_server *srv = ((hs_state *)state)->srv;
    if (!srv) return;
    pthread_mutex_destroy(&srv->lock);
    pthread_mutex_destroy(&srv->bind_lock);
    pthread_mutex_destroy(&srv->log_lock);
    hs_buf_free(&srv->log);
    free(srv->bindings);
    free(srv);
}

static const wpu_provider_def HS_PROVIDER = {
    .descriptor = &DESCRIPTOR,
    .state_size = sizeof(hs_state),
    .init = hs_init,
    .bind = bind_actor,
    .remove = remove_actor,
    .health = health,
    .call = call,
    .stop = hs_stop,
    .destroy = hs_destroy,
};

WPU_PROVIDER(HS_PROVIDER)
