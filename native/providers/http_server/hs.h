/*
 * hs.h - the parts of the native wascc:http_server (see http_server.c for the
 * design and the measurements behind it).
 *
 *   parse.c     the HTTP/1.1 request parser (strict, incremental), the
 *               HandleRequest payload, the actor's response and every
 *               response this server writes (status lines, error bodies)
 *   server.c    one listener: epoll, worker threads, connections, timeouts,
 *               eviction, drain
 *   http_server.c  the provider: binding values, BindActor/RemoveActor,
 *               status mapping of dispatch errors, ServerStatus
 */
#ifndef WASCC_HS_H
#define WASCC_HS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <wascc/msgpack.h>
#include <wascc/provider.h>

#define HS_CAPABILITY "wascc:http_server"
#define HS_OP "HandleRequest"

/* ---- a growable byte buffer ------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} hs_buf;

int hs_buf_reserve(hs_buf *b, size_t extra); /* 0, or -1 out of memory */
int hs_buf_put(hs_buf *b, const void *data, size_t n);
int hs_buf_puts(hs_buf *b, const char *s);
int hs_buf_printf(hs_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hs_buf_free(hs_buf *b);

/* ---- one listener's binding values ------------------------------------ */

typedef struct {
    int port;
    char address[256];
    size_t max_header_bytes, max_body_bytes, max_connections;
    double keepalive_timeout, request_timeout, drain_timeout;
    int access_log;
} hs_settings;

/* ---- the request parser -------------------------------------------------
 * A connection's parser consumes bytes from its input buffer and produces,
 * one at a time, a complete request (its HandleRequest payload is built as
 * it goes) or a refusal (a status code and a text) after which nothing more
 * is read from the connection. */

enum { HS_IDLE, HS_HEAD, HS_BODY, HS_CHUNK_SIZE, HS_CHUNK_EXT, HS_CHUNK_DATA, HS_CHUNK_CRLF,
       HS_TRAILER };

typedef struct {
    const hs_settings *settings;
    int phase;             /* HS_*: where in a request the parser is */
    size_t scanned;        /* head bytes already checked for the end of the head */
    double began;          /* when the current request's first byte arrived */
    /* the request whose head has been read */
    hs_buf payload;        /* HandleRequest payload so far (method .. header) */
    hs_buf body;
    size_t body_left;      /* Content-Length bytes still to come */
    uint64_t chunk;        /* current chunk: declared size, then bytes still to come */
    int chunk_digits;
    int cr;                /* the last byte of a chunk or trailer line was CR */
    size_t line_bytes;     /* bytes of the current chunk-size or trailer line */
    size_t trailer_bytes;
    int keep_alive, last, is_head, version10, expect_continue, continued;
    char method[24];
    hs_buf path; /* the request's path (kept for the access log only) */
} hs_parser;

/* What hs_parse found. */
enum { HS_MORE = 0, HS_REQUEST = 1, HS_REFUSE = 2 };

typedef struct {
    int code;          /* HS_REFUSE: the status */
    const char *text;  /* HS_REFUSE: what the error body says (static) */
    char detail[96];   /* HS_REFUSE with text == NULL: a formatted text */
} hs_refusal;

void hs_parser_init(hs_parser *p, const hs_settings *s);
void hs_parser_free(hs_parser *p);
/* Parse from in[*pos, len); advances *pos past what it consumed.  HS_REQUEST:
 * p->payload holds the whole HandleRequest payload; call hs_parser_next
 * after answering it.  `now` stamps a request's first byte. */
int hs_parse(hs_parser *p, const uint8_t *in, size_t len, size_t *pos, double now,
             hs_refusal *why);
void hs_parser_next(hs_parser *p);

/* ---- responses ---------------------------------------------------------- */

/* An answer ready to render: the actor's (decoded) or one of this server's. */
typedef struct {
    int code;
    const char *reason; /* NUL-terminated */
    hs_buf extra;       /* header lines ("Name: value\r\n"), already checked */
    const uint8_t *body;
    size_t body_len;
    int close;          /* close the connection after it */
    int has_date;       /* the actor gave a Date header */
    char *owned_reason; /* a reason phrase this reply owns */
    uint8_t *owned_body; /* a body this reply owns (an int-array body) */
    char text[160];     /* an error body this server wrote (body points here) */
} hs_reply;

const char *hs_phrase(int code);
/* Fill `r` with one of this server's error answers: "<code> <phrase>: <text>\n". */
void hs_error_reply(hs_reply *r, int code, const char *text);
/* Decode and sanitize an actor's HttpResponse; anything unusable is a 502.
 * `r->body` points into `raw`, which must outlive the rendering. */
void hs_actor_reply(hs_reply *r, const uint8_t *raw, size_t len);
void hs_reply_free(hs_reply *r);
/* Append the status line, headers and body to `out`; `head`: a HEAD request
 * (no body), `keep`: keep-alive, `version10`: say "Connection: keep-alive". */
int hs_render(hs_buf *out, const hs_reply *r, int head, int keep, int version10);

/* The bytes written to a connection over MAX_CONNECTIONS no eviction admits. */
extern const char HS_BUSY[];
#define HS_BUSY_BODY "503 Service Unavailable: too many connections\n"

double hs_now(void); /* CLOCK_MONOTONIC seconds */

/* ---- the listener (server.c) ------------------------------------------ */

typedef struct hs_server hs_server;   /* the provider: dispatch, counters */
typedef struct hs_listener hs_listener;

/* Maps a dispatch to an answer (http_server.c). */
void hs_invoke(hs_server *srv, const char *actor, const hs_buf *payload, hs_reply *reply,
               uint8_t **raw, size_t *raw_len);
void hs_release(hs_server *srv, uint8_t *raw);
void hs_count(hs_server *srv, int code);
/* One access log record (ACCESS_LOG=true), kept until the host reads it. */
void hs_access(hs_server *srv, const char *actor, const char *method, const hs_buf *path,
               int status, uint64_t micros);

/* Open the listening socket (or take `inherit_fd` over) and start serving.
 * NULL on failure with the reason in err (err_len bytes). */
hs_listener *hs_listener_start(hs_server *srv, const char *actor, const hs_settings *s,
                               int inherit_fd, char *err, size_t err_len);
/* Stop accepting, let requests in flight finish (DRAIN_TIMEOUT), join, free. */
void hs_listener_close(hs_listener *l);
/* Two steps of close, so stop drains every listener in one DRAIN_TIMEOUT. */
void hs_listener_begin_close(hs_listener *l);
void hs_listener_finish_close(hs_listener *l, double deadline);
const hs_settings *hs_listener_settings(const hs_listener *l);
int hs_listener_fd(const hs_listener *l);
int hs_listener_port(const hs_listener *l); /* the port it got (PORT=0) */
const char *hs_listener_host(const hs_listener *l); /* the address it got, numeric */
size_t hs_listener_connections(hs_listener *l);
int hs_listener_alive(hs_listener *l);

#endif /* WASCC_HS_H */
