/*
 * parse.c - the HTTP/1.1 request parser of the native wascc:http_server, the
 * HandleRequest payload it builds, and every response this server writes.
 *
 * The parser is strict where leniency lets requests be smuggled or misread
 * (RFC 9112): a line must end in CR LF (a bare LF is a 400), header names are
 * tokens with no space before the colon, obsolete line folding is refused,
 * a duplicate Content-Length or one beside Transfer-Encoding is a 400, and a
 * Transfer-Encoding whose last coding is not chunked is a 400.  The request
 * target must be visible ASCII; header values may hold any byte but controls
 * (0x80-0xFF are obs-text and reach the actor as ISO-8859-1, as the Python
 * server does).  Limits: the request head (request line and headers) may not
 * exceed MAX_HEADER_BYTES (431), the body MAX_BODY_BYTES (413, refused as
 * soon as a Content-Length or a chunk size says so, before any of the body).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hs.h"

/* ---- buffers ------------------------------------------------------------ */

int hs_buf_reserve(hs_buf *b, size_t extra) {
    if (b->cap - b->len >= extra) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) {
        if (cap > ((size_t)-1) / 2) return -1;
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int hs_buf_put(hs_buf *b, const void *data, size_t n) {
    if (hs_buf_reserve(b, n) != 0) return -1;
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

int hs_buf_puts(hs_buf *b, const char *s) { return hs_buf_put(b, s, strlen(s)); }

int hs_buf_printf(hs_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || hs_buf_reserve(b, (size_t)n + 1) != 0) return -1;
    va_start(ap, fmt);
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void hs_buf_free(hs_buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

double hs_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- msgpack into an hs_buf --------------------------------------------- */

static void put_be(hs_buf *b, uint8_t tag, uint64_t v, int n) {
    uint8_t tmp[9];
    tmp[0] = tag;
    for (int i = 0; i < n; i++) tmp[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    hs_buf_put(b, tmp, 1 + (size_t)n);
}

static void mp_str_head(hs_buf *b, size_t n) {
    if (n < 32) {
        uint8_t t = (uint8_t)(0xa0 | n);
        hs_buf_put(b, &t, 1);
    } else if (n < 256) {
        put_be(b, 0xd9, n, 1);
    } else if (n < 65536) {
        put_be(b, 0xda, n, 2);
    } else {
        put_be(b, 0xdb, n, 4);
    }
}

static void mp_str(hs_buf *b, const char *s, size_t n) {
    mp_str_head(b, n);
    hs_buf_put(b, s, n);
}

static void mp_cstr(hs_buf *b, const char *s) { mp_str(b, s, strlen(s)); }

static void mp_map_head(hs_buf *b, uint32_t n) {
    if (n < 16) {
        uint8_t t = (uint8_t)(0x80 | n);
        hs_buf_put(b, &t, 1);
    } else if (n < 65536) {
        put_be(b, 0xde, n, 2);
    } else {
        put_be(b, 0xdf, n, 4);
    }
}

static void mp_bin_head(hs_buf *b, size_t n) {
    if (n < 256) put_be(b, 0xc4, n, 1);
    else if (n < 65536) put_be(b, 0xc5, n, 2);
    else put_be(b, 0xc6, n, 4);
}

/* ISO-8859-1 bytes as a msgpack str (UTF-8): 0x80-0xFF take two bytes. */
static size_t latin1_utf8_len(const uint8_t *s, size_t n) {
    size_t len = n;
    for (size_t i = 0; i < n; i++) len += s[i] >> 7;
    return len;
}

static void put_latin1(hs_buf *b, const uint8_t *s, size_t n) {
    if (hs_buf_reserve(b, 2 * n) != 0) return;
    uint8_t *o = b->p + b->len;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c < 0x80) {
            *o++ = c;
        } else {
            *o++ = (uint8_t)(0xc0 | (c >> 6));
            *o++ = (uint8_t)(0x80 | (c & 0x3f));
        }
    }
    b->len = (size_t)(o - b->p);
}

/* ---- character classes --------------------------------------------------- */

static int is_tchar(uint8_t c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int hexval(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int ieq(const uint8_t *a, size_t n, const char *lit) {
    size_t i = 0;
    for (; i < n; i++) {
        uint8_t x = a[i], y = (uint8_t)lit[i];
        if (!y) return 0;
        if (x >= 'A' && x <= 'Z') x = (uint8_t)(x + 32);
        if (y >= 'A' && y <= 'Z') y = (uint8_t)(y + 32);
        if (x != y) return 0;
    }
    return lit[i] == 0;
}

/* Does the comma-separated list s[0, n) hold `token` (case-insensitive)? */
static int has_token(const uint8_t *s, size_t n, const char *token) {
    size_t i = 0;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == ',')) i++;
        size_t start = i;
        while (i < n && s[i] != ',') i++;
        size_t end = i;
        while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t')) end--;
        if (end > start && ieq(s + start, end - start, token)) return 1;
    }
    return 0;
}

/* The last element of a comma-separated list. */
static void last_token(const uint8_t *s, size_t n, const uint8_t **out, size_t *out_n) {
    size_t end = n;
    while (end > 0 && (s[end - 1] == ' ' || s[end - 1] == '\t')) end--;
    size_t start = end;
    while (start > 0 && s[start - 1] != ',') start--;
    while (start < end && (s[start] == ' ' || s[start] == '\t')) start++;
    *out = s + start;
    *out_n = end - start;
}

/* ---- the parser ------------------------------------------------------------ */

void hs_parser_init(hs_parser *p, const hs_settings *s) {
    memset(p, 0, sizeof *p);
    p->settings = s;
}

void hs_parser_free(hs_parser *p) {
    hs_buf_free(&p->payload);
    hs_buf_free(&p->body);
    hs_buf_free(&p->path);
}

void hs_parser_next(hs_parser *p) {
    p->phase = HS_IDLE;
    p->scanned = 0;
    p->payload.len = 0;
    p->body.len = 0;
    /* a large body's buffer is not kept for the next request */
    if (p->body.cap > (1u << 20)) hs_buf_free(&p->body);
    if (p->payload.cap > (1u << 20)) hs_buf_free(&p->payload);
}

static int refuse(hs_refusal *why, int code, const char *text) {
    why->code = code;
    why->text = text;
    return HS_REFUSE;
}

#define MALFORMED(what) refuse(why, 400, "malformed request (" what ")")

typedef struct {
    const uint8_t *name, *value;
    uint32_t name_len, value_len;
    int32_t next;  /* the next header of the same name, -1: none */
    int32_t first; /* 1: the first of its name */
} hs_field;

static uint32_t name_hash(const uint8_t *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 16777619u;
    return h;
}

/* Writes the header map: lower-cased names, repeated headers joined with
 * ", " ("; " for Cookie), in the order each name first appeared. */
static int write_headers(hs_buf *out, hs_field *f, size_t n) {
    size_t size = 16;
    while (size < 2 * n) size *= 2;
    int32_t *table = malloc(size * sizeof *table);
    int32_t *last = malloc((n ? n : 1) * sizeof *last);
    if (!table || !last) {
        free(table);
        free(last);
        return -1;
    }
    for (size_t i = 0; i < size; i++) table[i] = -1;
    uint32_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        f[i].next = -1;
        f[i].first = 1;
        size_t h = name_hash(f[i].name, f[i].name_len) & (size - 1);
        while (table[h] >= 0) {
            hs_field *g = &f[table[h]];
            if (g->name_len == f[i].name_len && memcmp(g->name, f[i].name, g->name_len) == 0)
                break;
            h = (h + 1) & (size - 1);
        }
        if (table[h] < 0) {
            table[h] = (int32_t)i;
            last[i] = (int32_t)i;
            distinct++;
        } else {
            int32_t head = table[h];
            f[last[head]].next = (int32_t)i;
            last[head] = (int32_t)i;
            f[i].first = 0;
        }
    }
    free(table);
    free(last);
    mp_map_head(out, distinct);
    for (size_t i = 0; i < n; i++) {
        if (!f[i].first) continue;
        mp_str(out, (const char *)f[i].name, f[i].name_len);
        int cookie = f[i].name_len == 6 && memcmp(f[i].name, "cookie", 6) == 0;
        size_t len = 0;
        for (int32_t j = (int32_t)i; j >= 0; j = f[j].next)
            len += latin1_utf8_len(f[j].value, f[j].value_len) + (j != (int32_t)i ? 2 : 0);
        mp_str_head(out, len);
        for (int32_t j = (int32_t)i; j >= 0; j = f[j].next) {
            if (j != (int32_t)i) hs_buf_put(out, cookie ? "; " : ", ", 2);
            put_latin1(out, f[j].value, f[j].value_len);
        }
    }
    return 0;
}

/* Splits the request target into path and query as the Python server does. */
static int split_target(const uint8_t *t, size_t n, int is_connect, const uint8_t **path,
                        size_t *path_n, const uint8_t **query, size_t *query_n) {
    *query = t + n;
    *query_n = 0;
    if (n && t[0] == '/') {
        const uint8_t *q = memchr(t, '?', n);
        if (!q) {
            *path = t;
            *path_n = n;
            return 0;
        }
        *path = t;
        *path_n = (size_t)(q - t);
        const uint8_t *qs = q + 1, *end = t + n;
        const uint8_t *hash = memchr(qs, '#', (size_t)(end - qs));
        *query = qs;
        *query_n = (size_t)((hash ? hash : end) - qs);
        return 0;
    }
    if ((n == 1 && t[0] == '*') || is_connect) {
        *path = t;
        *path_n = n;
        return 0;
    }
    /* absolute form: scheme "://" authority [path] ["?" query] ["#" fragment] */
    size_t i = 0;
    while (i < n && (((t[i] | 32) >= 'a' && (t[i] | 32) <= 'z') ||
                     (i && ((t[i] >= '0' && t[i] <= '9') || t[i] == '+' || t[i] == '-' ||
                            t[i] == '.'))))
        i++;
    if (i == 0 || n - i < 3 || memcmp(t + i, "://", 3) != 0) return -1;
    i += 3;
    size_t auth = i;
    while (i < n && t[i] != '/' && t[i] != '?' && t[i] != '#') i++;
    if (i == auth) return -1;
    size_t ps = i;
    while (i < n && t[i] != '?' && t[i] != '#') i++;
    if (i > ps) {
        *path = t + ps;
        *path_n = i - ps;
    } else {
        *path = (const uint8_t *)"/";
        *path_n = 1;
    }
    if (i < n && t[i] == '?') {
        size_t qs = ++i;
        while (i < n && t[i] != '#') i++;
        *query = t + qs;
        *query_n = i - qs;
    }
    return 0;
}

/* Parses a complete head h[0, n) (it ends with CR LF CR LF). */
static int parse_head(hs_parser *p, uint8_t *h, size_t n, hs_refusal *why) {
    const hs_settings *s = p->settings;
    size_t i = 0;
    /* request line: method SP target SP HTTP/d.d CRLF */
    size_t m = 0;
    while (i < n && is_tchar(h[i])) i++;
    m = i;
    if (m == 0 || i >= n || h[i] != ' ') return MALFORMED("invalid request line");
    if (m >= sizeof p->method) return MALFORMED("the method is too long");
    memcpy(p->method, h, m);
    p->method[m] = 0;
    size_t ts = ++i;
    while (i < n && h[i] != ' ' && h[i] != '\r') {
        if (h[i] < 0x21 || h[i] > 0x7e)
            return refuse(why, 400, "the request target holds a byte a URI may not (RFC 3986)");
        i++;
    }
    size_t te = i;
    if (te == ts || i >= n || h[i] != ' ') return MALFORMED("invalid request line");
    i++;
    if (n - i < 10 || memcmp(h + i, "HTTP/", 5) != 0 || h[i + 5] < '0' || h[i + 5] > '9' ||
        h[i + 6] != '.' || h[i + 7] < '0' || h[i + 7] > '9' || h[i + 8] != '\r' ||
        h[i + 9] != '\n')
        return MALFORMED("invalid HTTP version");
    int major = h[i + 5] - '0', minor = h[i + 7] - '0';
    i += 10;

    /* header lines */
    size_t cap = 16, count = 0;
    hs_field *f = malloc(cap * sizeof *f);
    if (!f) return refuse(why, 500, "out of memory");
    const uint8_t *cl = NULL, *te_v = NULL, *expect = NULL;
    size_t cl_n = 0, te_n = 0, expect_n = 0;
    int cl_seen = 0, te_seen = 0, conn_close = 0, conn_keep = 0, conn_upgrade = 0, upgrade = 0;
    int rc = HS_REQUEST;
    while (i + 1 < n && !(h[i] == '\r' && h[i + 1] == '\n')) {
        if (h[i] == ' ' || h[i] == '\t') {
            rc = MALFORMED("obsolete line folding");
            goto done;
        }
        size_t ns = i;
        while (i < n && is_tchar(h[i])) {
            if (h[i] >= 'A' && h[i] <= 'Z') h[i] = (uint8_t)(h[i] + 32);
            i++;
        }
        if (i == ns || i >= n || h[i] != ':') {
            rc = MALFORMED("invalid header name");
            goto done;
        }
        size_t ne = i++;
        while (i < n && (h[i] == ' ' || h[i] == '\t')) i++;
        size_t vs = i;
        while (i < n && h[i] != '\r') {
            uint8_t c = h[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                rc = MALFORMED("invalid header value");
                goto done;
            }
            i++;
        }
        if (i + 1 >= n || h[i + 1] != '\n') {
            rc = MALFORMED("invalid header value");
            goto done;
        }
        size_t ve = i;
        while (ve > vs && (h[ve - 1] == ' ' || h[ve - 1] == '\t')) ve--;
        i += 2;
        if (count == cap) {
            hs_field *g = realloc(f, 2 * cap * sizeof *f);
            if (!g) {
                rc = refuse(why, 500, "out of memory");
                goto done;
            }
            f = g;
            cap *= 2;
        }
        hs_field *x = &f[count++];
        x->name = h + ns;
        x->name_len = (uint32_t)(ne - ns);
        x->value = h + vs;
        x->value_len = (uint32_t)(ve - vs);
        const uint8_t *name = h + ns, *value = h + vs;
        size_t nl = ne - ns, vl = ve - vs;
        if (nl == 14 && memcmp(name, "content-length", 14) == 0) {
            if (cl_seen++) {
                rc = MALFORMED("duplicate Content-Length");
                goto done;
            }
            cl = value;
            cl_n = vl;
        } else if (nl == 17 && memcmp(name, "transfer-encoding", 17) == 0) {
            te_seen = 1;
            te_v = value;
            te_n = vl;
        } else if (nl == 10 && memcmp(name, "connection", 10) == 0) {
            conn_close |= has_token(value, vl, "close");
            conn_keep |= has_token(value, vl, "keep-alive");
            conn_upgrade |= has_token(value, vl, "upgrade");
        } else if (nl == 7 && memcmp(name, "upgrade", 7) == 0) {
            upgrade = 1;
        } else if (nl == 6 && memcmp(name, "expect", 6) == 0) {
            expect = value;
            expect_n = vl;
        }
    }
    if (!((major == 1 && minor == 1) || (major == 1 && minor == 0))) {
        snprintf(why->detail, sizeof why->detail, "HTTP/%d.%d is not supported", major, minor);
        why->code = 505;
        why->text = NULL;
        rc = HS_REFUSE;
        goto done;
    }
    int chunked = 0;
    uint64_t length = 0;
    if (cl) {
        if (cl_n == 0) {
            rc = MALFORMED("invalid Content-Length");
            goto done;
        }
        for (size_t k = 0; k < cl_n; k++) {
            if (cl[k] < '0' || cl[k] > '9') {
                rc = MALFORMED("invalid Content-Length");
                goto done;
            }
            length = length > (UINT64_MAX - 9) / 10 ? UINT64_MAX : length * 10 + (cl[k] - '0');
        }
    }
    if (te_seen) {
        if (cl) {
            rc = MALFORMED("Content-Length with Transfer-Encoding");
            goto done;
        }
        const uint8_t *lt;
        size_t ltn;
        last_token(te_v, te_n, &lt, &ltn);
        if (!ieq(lt, ltn, "chunked")) {
            rc = MALFORMED("the last Transfer-Encoding of a request must be chunked");
            goto done;
        }
        chunked = 1;
    }
    if (cl && length > s->max_body_bytes) {
        rc = refuse(why, 413, "the request body is too large");
        goto done;
    }
    p->version10 = minor == 0;
    p->expect_continue = 0;
    p->continued = 0;
    if (expect && !p->version10) {
        if (!ieq(expect, expect_n, "100-continue")) {
            rc = refuse(why, 417, "only Expect: 100-continue is supported");
            goto done;
        }
        p->expect_continue = 1;
    }
    int is_connect = strcmp(p->method, "CONNECT") == 0;
    const uint8_t *path, *query;
    size_t path_n, query_n;
    if (split_target(h + ts, te - ts, is_connect, &path, &path_n, &query, &query_n) != 0) {
        rc = refuse(why, 400, "the request target is not a URL");
        goto done;
    }
    p->keep_alive = p->version10 ? conn_keep && !conn_close : !conn_close;
    p->last = is_connect || (conn_upgrade && upgrade);
    p->is_head = strcmp(p->method, "HEAD") == 0;
    if (s->access_log) {
        p->path.len = 0;
        hs_buf_put(&p->path, path, path_n);
    }

    hs_buf *out = &p->payload;
    out->len = 0;
    mp_map_head(out, 5);
    mp_cstr(out, "method");
    mp_cstr(out, p->method);
    mp_cstr(out, "path");
    mp_str(out, (const char *)path, path_n);
    mp_cstr(out, "queryString");
    mp_str(out, (const char *)query, query_n);
    mp_cstr(out, "header");
    if (write_headers(out, f, count) != 0) {
        rc = refuse(why, 500, "out of memory");
        goto done;
    }
    mp_cstr(out, "body");
    p->body.len = 0;
    if (chunked) {
        p->phase = HS_CHUNK_SIZE;
        p->chunk = 0;
        p->chunk_digits = 0;
        p->line_bytes = 0;
        p->trailer_bytes = 0;
        p->cr = 0;
    } else if (length) {
        p->phase = HS_BODY;
        p->body_left = (size_t)length;
        if (hs_buf_reserve(&p->body, (size_t)length) != 0) {
            rc = refuse(why, 500, "out of memory");
            goto done;
        }
    } else {
        p->phase = HS_IDLE; /* complete: no body */
    }
done:
    free(f);
    return rc;
}

static int finish(hs_parser *p) {
    mp_bin_head(&p->payload, p->body.len);
    if (hs_buf_put(&p->payload, p->body.p, p->body.len) != 0) return -1;
    return 0;
}

int hs_parse(hs_parser *p, const uint8_t *in, size_t len, size_t *pos, double now,
             hs_refusal *why) {
    const hs_settings *s = p->settings;
    why->text = NULL;
    why->detail[0] = 0;
    size_t at = *pos;
    for (;;) {
        switch (p->phase) {
        case HS_IDLE:
            if (at >= len) {
                *pos = at;
                return HS_MORE;
            }
            p->phase = HS_HEAD;
            p->scanned = 0;
            p->began = now;
            /* fall through */
        case HS_HEAD: {
            size_t start = at, i = at + p->scanned, end = 0;
            for (; i < len; i++) {
                if (in[i] != '\n') continue;
                if (i == start || in[i - 1] != '\r') {
                    *pos = at;
                    return MALFORMED("a line ends in a bare LF");
                }
                if (i == start + 1) { /* an empty line before the request line: skipped */
                    start = i + 1;
                    continue;
                }
                if (i - start >= 3 && in[i - 2] == '\n') {
                    end = i + 1;
                    break;
                }
            }
            at = start;
            if (!end) {
                p->scanned = len - start;
                *pos = at;
                if (p->scanned > s->max_header_bytes)
                    return refuse(why, 431, "the request headers are too large");
                return HS_MORE;
            }
            if (end - start > s->max_header_bytes) {
                *pos = at;
                return refuse(why, 431, "the request headers are too large");
            }
            int rc = parse_head(p, (uint8_t *)in + start, end - start, why);
            at = end;
            *pos = at;
            if (rc != HS_REQUEST) return rc;
            if (p->phase == HS_IDLE) {
                if (finish(p) != 0) return refuse(why, 500, "out of memory");
                p->phase = HS_HEAD; /* hs_parser_next resets it */
                return HS_REQUEST;
            }
            break;
        }
        case HS_BODY: {
            size_t n = len - at < p->body_left ? len - at : p->body_left;
            hs_buf_put(&p->body, in + at, n);
            at += n;
            p->body_left -= n;
            *pos = at;
            if (p->body_left) return HS_MORE;
            if (finish(p) != 0) return refuse(why, 500, "out of memory");
            return HS_REQUEST;
        }
        case HS_CHUNK_SIZE:
            while (at < len) {
                int v = hexval(in[at]);
                if (v < 0) break;
                if (p->chunk_digits >= 15 ||
                    (p->chunk = p->chunk * 16 + (uint64_t)v) > s->max_body_bytes - p->body.len) {
                    *pos = at;
                    return refuse(why, 413,
                                  "a chunk of the request body is larger than the body limit");
                }
                p->chunk_digits++;
                at++;
            }
            if (at >= len) {
                *pos = at;
                return HS_MORE;
            }
            if (!p->chunk_digits || (in[at] != ';' && in[at] != '\r')) {
                *pos = at;
                return MALFORMED("invalid chunk size");
            }
            p->phase = HS_CHUNK_EXT;
            p->line_bytes = 0;
            p->cr = 0;
            break;
        case HS_CHUNK_EXT:
        case HS_TRAILER:
            while (at < len) {
                uint8_t c = in[at++];
                if (p->cr) {
                    if (c != '\n') {
                        *pos = at;
                        return MALFORMED("a CR not followed by LF");
                    }
                    p->cr = 0;
                    if (p->phase == HS_TRAILER) {
                        if (p->line_bytes == 0) { /* the empty line: the request is complete */
                            *pos = at;
                            if (finish(p) != 0) return refuse(why, 500, "out of memory");
                            return HS_REQUEST;
                        }
                        p->line_bytes = 0;
                        continue;
                    }
                    if (p->chunk == 0) {
                        p->phase = HS_TRAILER;
                        p->line_bytes = 0;
                    } else {
                        p->phase = HS_CHUNK_DATA;
                    }
                    break;
                }
                if (c == '\r') {
                    p->cr = 1;
                    continue;
                }
                if (c == '\n') {
                    *pos = at;
                    return MALFORMED("a line ends in a bare LF");
                }
                if ((c < 0x20 && c != '\t') || c == 0x7f) {
                    *pos = at;
                    return p->phase == HS_TRAILER ? MALFORMED("invalid trailer")
                                                  : MALFORMED("invalid chunk extension");
                }
                p->line_bytes++;
                if (p->phase == HS_TRAILER) {
                    if (++p->trailer_bytes > s->max_header_bytes) {
                        *pos = at;
                        return refuse(why, 431, "the request trailers are too large");
                    }
                } else if (p->line_bytes > 4096) {
                    *pos = at;
                    return MALFORMED("a chunk extension is too long");
                }
            }
            if (p->phase == HS_CHUNK_EXT || p->phase == HS_TRAILER) {
                if (at >= len) {
                    *pos = at;
                    return HS_MORE;
                }
            }
            break;
        case HS_CHUNK_DATA: {
            size_t n = len - at < p->chunk ? len - at : (size_t)p->chunk;
            if (hs_buf_put(&p->body, in + at, n) != 0) return refuse(why, 500, "out of memory");
            at += n;
            p->chunk -= n;
            if (p->chunk) {
                *pos = at;
                return HS_MORE;
            }
            p->phase = HS_CHUNK_CRLF;
            p->line_bytes = 0;
            break;
        }
        case HS_CHUNK_CRLF:
            while (at < len && p->line_bytes < 2) {
                if (in[at] != (p->line_bytes ? '\n' : '\r')) {
                    *pos = at;
                    return MALFORMED("a chunk does not end in CR LF");
                }
                at++;
                p->line_bytes++;
            }
            if (p->line_bytes < 2) {
                *pos = at;
                return HS_MORE;
            }
            p->phase = HS_CHUNK_SIZE;
            p->chunk = 0;
            p->chunk_digits = 0;
            break;
        }
    }
}

/* ---- responses ------------------------------------------------------------- */

const char HS_BUSY[] = "HTTP/1.1 503 Service Unavailable\r\n"
                       "Content-Type: text/plain; charset=utf-8\r\n"
                       "Retry-After: 1\r\nConnection: close\r\n"
                       "Content-Length: 46\r\n\r\n" HS_BUSY_BODY;

const char *hs_phrase(int code) {
    switch (code) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Request Entity Too Large";
    case 414: return "Request-URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Requested Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a Teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Entity";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    default: return "Unknown";
    }
}

void hs_error_reply(hs_reply *r, int code, const char *text) {
    memset(r, 0, sizeof *r);
    r->code = code;
    r->reason = hs_phrase(code);
    hs_buf_puts(&r->extra, "Content-Type: text/plain; charset=utf-8\r\n");
    if (code == 503) {
        hs_buf_puts(&r->extra, "Retry-After: 1\r\n");
        r->close = 1;
    }
    int n = snprintf(r->text, sizeof r->text, "%d %s: %s\n", code, r->reason, text);
    r->body = (const uint8_t *)r->text;
    r->body_len = n < 0 ? 0 : ((size_t)n < sizeof r->text ? (size_t)n : sizeof r->text - 1);
}

void hs_reply_free(hs_reply *r) {
    hs_buf_free(&r->extra);
    free(r->owned_reason);
    free(r->owned_body);
    r->owned_reason = NULL;
    r->owned_body = NULL;
}

static int bad_value_char(uint8_t c) { return (c <= 0x08) || (c >= 0x0a && c <= 0x1f) || c == 0x7f; }

static int hop_by_hop(const char *name, size_t n) {
    static const char *const hop[] = {"content-length", "transfer-encoding", "connection",
                                      "keep-alive",     "upgrade",           "te",
                                      "trailer"};
    for (size_t i = 0; i < sizeof hop / sizeof *hop; i++)
        if (ieq((const uint8_t *)name, n, hop[i])) return 1;
    return 0;
}

/* Reads a body: bin, str, nil or an array of uints 0-255 (codec 0.5). */
static int read_body(wmp_reader *rd, hs_reply *r) {
    int kind = wmp_peek(rd);
    if (kind == WMP_NIL) return wmp_read_nil(rd);
    if (kind == WMP_ARRAY) {
        uint32_t n;
        if (!wmp_read_array(rd, &n)) return 0;
        if (n > wmp_remaining(rd)) return 0;
        free(r->owned_body);
        r->owned_body = malloc(n ? n : 1);
        if (!r->owned_body) return 0;
        for (uint32_t i = 0; i < n; i++) {
            uint64_t v;
            if (!wmp_read_uint(rd, &v) || v > 255) return 0;
            r->owned_body[i] = (uint8_t)v;
        }
        r->body = r->owned_body;
        r->body_len = n;
        return 1;
    }
    const uint8_t *b;
    uint32_t n;
    if (!wmp_read_bin(rd, &b, &n)) return 0;
    r->body = b;
    r->body_len = n;
    return 1;
}

static int read_status(wmp_reader *rd, int64_t *code) {
    if (wmp_peek(rd) == WMP_NIL) return wmp_read_nil(rd);
    return wmp_read_int(rd, code);
}

static int read_reason(wmp_reader *rd, const char **s, uint32_t *n) {
    if (wmp_peek(rd) == WMP_NIL) {
        *s = "";
        *n = 0;
        return wmp_read_nil(rd);
    }
    return wmp_read_str(rd, s, n);
}

static int read_header_map(wmp_reader *rd, const uint8_t **at, size_t *len) {
    const uint8_t *start = rd->p;
    if (wmp_peek(rd) == WMP_NIL) {
        *at = NULL;
        return wmp_read_nil(rd);
    }
    if (wmp_peek(rd) != WMP_MAP) return 0;
    if (!wmp_skip(rd)) return 0;
    *at = start;
    *len = (size_t)(rd->p - start);
    return 1;
}

void hs_actor_reply(hs_reply *r, const uint8_t *raw, size_t len) {
    memset(r, 0, sizeof *r);
    wmp_reader rd;
    wmp_reader_init(&rd, raw, len);
    int64_t code = 200;
    const char *reason = "OK";
    uint32_t reason_n = 2;
    const uint8_t *hdr = NULL;
    size_t hdr_len = 0;
    int ok = 1;
    if (wmp_peek(&rd) == WMP_MAP) {
        uint32_t n;
        ok = wmp_read_map(&rd, &n);
        for (uint32_t i = 0; ok && i < n; i++) {
            const char *k;
            uint32_t kl;
            if (!wmp_read_str(&rd, &k, &kl)) {
                ok = 0;
                break;
            }
            if (wmp_eq(k, kl, "statusCode") || wmp_eq(k, kl, "status_code"))
                ok = read_status(&rd, &code);
            else if (wmp_eq(k, kl, "status"))
                ok = read_reason(&rd, &reason, &reason_n);
            else if (wmp_eq(k, kl, "header"))
                ok = read_header_map(&rd, &hdr, &hdr_len);
            else if (wmp_eq(k, kl, "body"))
                ok = read_body(&rd, r);
            else
                ok = wmp_skip(&rd);
        }
    } else if (wmp_peek(&rd) == WMP_ARRAY) { /* codec 0.5: by position */
        uint32_t n;
        ok = wmp_read_array(&rd, &n);
        for (uint32_t i = 0; ok && i < n; i++) {
            if (i == 0) ok = read_status(&rd, &code);
            else if (i == 1) ok = read_reason(&rd, &reason, &reason_n);
            else if (i == 2) ok = read_header_map(&rd, &hdr, &hdr_len);
            else if (i == 3) ok = read_body(&rd, r);
            else ok = wmp_skip(&rd);
        }
    } else {
        ok = 0;
    }
    if (!ok || rd.err) {
        free(r->owned_body);
        hs_error_reply(r, 502, "the actor's answer is not an HTTP response");
        return;
    }
    if (code < 200 || code > 599) {
        free(r->owned_body);
        hs_error_reply(r, 502, "the actor's answer has an invalid status code");
        return;
    }
    r->code = (int)code;
    int good = reason_n > 0;
    for (uint32_t i = 0; good && i < reason_n; i++)
        if (bad_value_char((uint8_t)reason[i])) good = 0;
    if (good && (r->owned_reason = malloc(reason_n + 1)) != NULL) {
        memcpy(r->owned_reason, reason, reason_n);
        r->owned_reason[reason_n] = 0;
        r->reason = r->owned_reason;
    } else {
        r->reason = hs_phrase(r->code);
    }
    if (hdr) {
        wmp_reader h;
        wmp_reader_init(&h, hdr, hdr_len);
        uint32_t n;
        int hok = wmp_read_map(&h, &n);
        for (uint32_t i = 0; hok && i < n; i++) {
            const char *k, *v;
            uint32_t kl, vl;
            if (!wmp_read_str(&h, &k, &kl) || !read_reason(&h, &v, &vl)) {
                hok = 0;
                break;
            }
            if (hop_by_hop(k, kl)) continue;
            int fine = kl > 0;
            for (uint32_t j = 0; fine && j < kl; j++) fine = is_tchar((uint8_t)k[j]);
            for (uint32_t j = 0; fine && j < vl; j++) fine = !bad_value_char((uint8_t)v[j]);
            if (!fine) continue;
            if (ieq((const uint8_t *)k, kl, "date")) r->has_date = 1;
            hs_buf_put(&r->extra, k, kl);
            hs_buf_put(&r->extra, ": ", 2);
            hs_buf_put(&r->extra, v, vl);
            hs_buf_put(&r->extra, "\r\n", 2);
        }
        if (!hok) {
            hs_reply_free(r);
            hs_error_reply(r, 502, "the actor's answer is not an HTTP response");
            return;
        }
    }
}

static void http_date(char out[40]) {
    static __thread time_t cached_at = 0;
    static __thread char cached[40];
    time_t now = time(NULL);
    if (now != cached_at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(cached, sizeof cached, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached_at = now;
    }
    memcpy(out, cached, 40);
}

/* The head is written as UTF-8; when every character fits ISO-8859-1 it is
 * sent as ISO-8859-1 instead (as the Python server does). */
static void head_to_latin1(hs_buf *out, size_t start) {
    uint8_t *p = out->p + start;
    size_t n = out->len - start, i = 0;
    int high = 0;
    for (; i < n; i++) {
        if (p[i] >= 0x80) {
            high = 1;
            break;
        }
    }
    if (!high) return;
    /* check first: every sequence must be C2/C3 xx (U+0080-U+00FF) */
    for (i = 0; i < n; i++) {
        if (p[i] < 0x80) continue;
        if ((p[i] != 0xc2 && p[i] != 0xc3) || i + 1 >= n || (p[i + 1] & 0xc0) != 0x80) return;
        i++;
    }
    size_t o = 0;
    for (i = 0; i < n; i++) {
        if (p[i] < 0x80) {
            p[o++] = p[i];
        } else {
            p[o++] = (uint8_t)(((p[i] & 0x03) << 6) | (p[i + 1] & 0x3f));
            i++;
        }
    }
    out->len = start + o;
}

int hs_render(hs_buf *out, const hs_reply *r, int head, int keep, int version10) {
    size_t start = out->len;
    if (hs_buf_reserve(out, 256 + r->extra.len + (head ? 0 : r->body_len)) != 0) return -1;
    hs_buf_printf(out, "HTTP/1.1 %d %s\r\n", r->code, r->reason);
    hs_buf_put(out, r->extra.p, r->extra.len);
    if (!r->has_date) {
        char date[40];
        http_date(date);
        hs_buf_puts(out, "Date: ");
        hs_buf_puts(out, date);
        hs_buf_puts(out, "\r\n");
    }
    int no_body = r->code == 204 || r->code == 304;
    if (!no_body) hs_buf_printf(out, "Content-Length: %zu\r\n", r->body_len);
    if (!keep) hs_buf_puts(out, "Connection: close\r\n\r\n");
    else if (version10) hs_buf_puts(out, "Connection: keep-alive\r\n\r\n");
    else hs_buf_puts(out, "\r\n");
    head_to_latin1(out, start);
    if (!head && !no_body) hs_buf_put(out, r->body, r->body_len);
    return 0;
}
