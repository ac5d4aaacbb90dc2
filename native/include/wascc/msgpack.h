/*
 * wascc/msgpack.h - a small, bounds-checked msgpack reader and writer.
 *
 * Header-only and freestanding: it needs only <stdint.h> and <stddef.h>, so
 * it builds for native providers (gcc) and for wasm32 actors without libc
 * (clang --target=wasm32).  Every read checks the remaining length; a read
 * that would run past the end, or meets the wrong type, sets `err` and
 * returns 0, and every later read on that reader fails too.  Nothing is
 * allocated by the reader: strings and binaries point into the input.
 *
 * Reading:
 *     wmp_reader r; wmp_reader_init(&r, data, len);
 *     uint32_t n; if (!wmp_read_map(&r, &n)) ...
 *     for (i < n) { const char *k; uint32_t kl; wmp_read_str(&r, &k, &kl);
 *                   if (wmp_eq(k, kl, "key")) wmp_read_str(&r, &v, &vl);
 *                   else wmp_skip(&r); }
 * String fields accept msgpack str or bin, binary fields bin or str, as the
 * waSCC codec does.
 *
 * Writing into a caller's buffer, growing it through an optional callback:
 *     wmp_writer w; wmp_writer_init(&w, buf, cap, grow, grow_ctx);
 *     wmp_write_map(&w, 2); wmp_write_cstr(&w, "value"); ...
 *     if (w.err) ... else use w.buf, w.len
 * `grow(ctx, old, new_cap)` returns a buffer of at least new_cap bytes
 * holding the old contents (realloc semantics), or NULL; without it the
 * writer fails (err set) when the buffer is full.
 */
#ifndef WASCC_MSGPACK_H
#define WASCC_MSGPACK_H

#include <stddef.h>
#include <stdint.h>

#ifndef WMP_MAX_DEPTH
#define WMP_MAX_DEPTH 32 /* nesting limit for wmp_skip */
#endif

enum {
    WMP_NIL = 1,
    WMP_BOOL,
    WMP_INT,   /* any integer that fits int64 or uint64 */
    WMP_FLOAT,
    WMP_STR,
    WMP_BIN,
    WMP_ARRAY,
    WMP_MAP,
    WMP_EXT,
    WMP_INVALID
};

typedef struct wmp_reader {
    const uint8_t *p;
    const uint8_t *end;
    int err;
} wmp_reader;

typedef void *(*wmp_grow_fn)(void *ctx, void *old, size_t new_cap);

typedef struct wmp_writer {
    uint8_t *buf;
    size_t len;
    size_t cap;
    int err;
    wmp_grow_fn grow;
    void *grow_ctx;
} wmp_writer;

static inline void wmp_copy(void *dst, const void *src, size_t n) {
    uint8_t *d = (uint8_t *)dst;
    const uint8_t *s = (const uint8_t *)src;
    while (n--) *d++ = *s++;
}

/* ---- reading ------------------------------------------------------------ */

static inline void wmp_reader_init(wmp_reader *r, const void *data, size_t len) {
    r->p = (const uint8_t *)data;
    r->end = data ? r->p + len : r->p; /* no arithmetic on NULL */
    r->err = 0;
}

static inline size_t wmp_remaining(const wmp_reader *r) { return (size_t)(r->end - r->p); }

static inline int wmp_fail(wmp_reader *r) {
    r->err = 1;
    return 0;
}

static inline int wmp_need(wmp_reader *r, size_t n) {
    if (r->err || wmp_remaining(r) < n) return wmp_fail(r);
    return 1;
}

static inline uint64_t wmp_be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* The type of the next value, without consuming it. */
static inline int wmp_peek(const wmp_reader *r) {
    if (r->err || r->p >= r->end) return WMP_INVALID;
    uint8_t b = *r->p;
    if (b <= 0x7f || b >= 0xe0) return WMP_INT;
    if (b <= 0x8f || b == 0xde || b == 0xdf) return WMP_MAP;
    if (b <= 0x9f || b == 0xdc || b == 0xdd) return WMP_ARRAY;
    if (b <= 0xbf || (b >= 0xd9 && b <= 0xdb)) return WMP_STR;
    switch (b) {
    case 0xc0: return WMP_NIL;
    case 0xc2: case 0xc3: return WMP_BOOL;
    case 0xc4: case 0xc5: case 0xc6: return WMP_BIN;
    case 0xca: case 0xcb: return WMP_FLOAT;
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: return WMP_INT;
    case 0xc7: case 0xc8: case 0xc9:
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: return WMP_EXT;
    default: return WMP_INVALID; /* 0xc1 is never used */
    }
}

static inline int wmp_read_nil(wmp_reader *r) {
    if (!wmp_need(r, 1) || *r->p != 0xc0) return wmp_fail(r);
    r->p++;
    return 1;
}

static inline int wmp_read_bool(wmp_reader *r, int *out) {
    if (!wmp_need(r, 1)) return 0;
    if (*r->p != 0xc2 && *r->p != 0xc3) return wmp_fail(r);
    *out = *r->p == 0xc3;
    r->p++;
    return 1;
}

/* Any msgpack integer into int64; refuses uint64 values above INT64_MAX. */
static inline int wmp_read_int(wmp_reader *r, int64_t *out) {
    if (!wmp_need(r, 1)) return 0;
    uint8_t b = *r->p;
    if (b <= 0x7f) { *out = b; r->p++; return 1; }
    if (b >= 0xe0) { *out = (int8_t)b; r->p++; return 1; }
    int n;
    int is_signed;
    switch (b) {
    case 0xcc: n = 1; is_signed = 0; break;
    case 0xcd: n = 2; is_signed = 0; break;
    case 0xce: n = 4; is_signed = 0; break;
    case 0xcf: n = 8; is_signed = 0; break;
    case 0xd0: n = 1; is_signed = 1; break;
    case 0xd1: n = 2; is_signed = 1; break;
    case 0xd2: n = 4; is_signed = 1; break;
    case 0xd3: n = 8; is_signed = 1; break;
    default: return wmp_fail(r);
    }
    if (!wmp_need(r, 1 + (size_t)n)) return 0;
    uint64_t v = wmp_be(r->p + 1, n);
    if (is_signed) {
        int shift = 64 - 8 * n;
        *out = (int64_t)(v << shift) >> shift;
    } else {
        if (v > (uint64_t)INT64_MAX) return wmp_fail(r);
        *out = (int64_t)v;
    }
    r->p += 1 + n;
    return 1;
}

static inline int wmp_read_uint(wmp_reader *r, uint64_t *out) {
    if (wmp_need(r, 1) && *r->p == 0xcf) {
        if (!wmp_need(r, 9)) return 0;
        *out = wmp_be(r->p + 1, 8);
        r->p += 9;
        return 1;
    }
    int64_t v;
    if (!wmp_read_int(r, &v)) return 0;
    if (v < 0) return wmp_fail(r);
    *out = (uint64_t)v;
    return 1;
}

static inline int wmp_read_len(wmp_reader *r, int n, uint32_t *len) {
    if (!wmp_need(r, 1 + (size_t)n)) return 0;
    *len = (uint32_t)wmp_be(r->p + 1, n);
    r->p += 1 + n;
    return 1;
}

/* Reads a str or a bin (the codec accepts either) pointing into the input. */
static inline int wmp_read_bytes_any(wmp_reader *r, const uint8_t **out, uint32_t *len) {
    *out = 0; /* defined even on failure (and no -Wmaybe-uninitialized in callers) */
    *len = 0;
    if (!wmp_need(r, 1)) return 0;
    uint8_t b = *r->p;
    if (b >= 0xa0 && b <= 0xbf) {
        *len = b & 0x1f;
        r->p++;
    } else if (b == 0xd9 || b == 0xc4) {
        if (!wmp_read_len(r, 1, len)) return 0;
    } else if (b == 0xda || b == 0xc5) {
        if (!wmp_read_len(r, 2, len)) return 0;
    } else if (b == 0xdb || b == 0xc6) {
        if (!wmp_read_len(r, 4, len)) return 0;
    } else {
        return wmp_fail(r);
    }
    if (!wmp_need(r, *len)) return 0;
    *out = r->p;
    r->p += *len;
    return 1;
}

static inline int wmp_read_str(wmp_reader *r, const char **out, uint32_t *len) {
    /* Not a cast of `out` to (const uint8_t **): a store through that type
     * does not alias a `const char *` under strict aliasing. */
    const uint8_t *p;
    int ok = wmp_read_bytes_any(r, &p, len);
    *out = (const char *)p;
    return ok;
}

static inline int wmp_read_bin(wmp_reader *r, const uint8_t **out, uint32_t *len) {
    return wmp_read_bytes_any(r, out, len);
}

static inline int wmp_read_map(wmp_reader *r, uint32_t *n) {
    if (!wmp_need(r, 1)) return 0;
    uint8_t b = *r->p;
    if (b >= 0x80 && b <= 0x8f) { *n = b & 0x0f; r->p++; return 1; }
    if (b == 0xde) return wmp_read_len(r, 2, n);
    if (b == 0xdf) return wmp_read_len(r, 4, n);
    return wmp_fail(r);
}

static inline int wmp_read_array(wmp_reader *r, uint32_t *n) {
    if (!wmp_need(r, 1)) return 0;
    uint8_t b = *r->p;
    if (b >= 0x90 && b <= 0x9f) { *n = b & 0x0f; r->p++; return 1; }
    if (b == 0xdc) return wmp_read_len(r, 2, n);
    if (b == 0xdd) return wmp_read_len(r, 4, n);
    return wmp_fail(r);
}

static inline int wmp_skip_depth(wmp_reader *r, int depth) {
    if (depth > WMP_MAX_DEPTH) return wmp_fail(r);
    const uint8_t *dummy;
    uint32_t n;
    int64_t i;
    switch (wmp_peek(r)) {
    case WMP_NIL: return wmp_read_nil(r);
    case WMP_BOOL: { int b; return wmp_read_bool(r, &b); }
    case WMP_INT: {
        uint64_t u;
        return *r->p == 0xcf ? wmp_read_uint(r, &u) : wmp_read_int(r, &i);
    }
    case WMP_FLOAT: {
        size_t n2 = *r->p == 0xca ? 5 : 9;
        if (!wmp_need(r, n2)) return 0;
        r->p += n2;
        return 1;
    }
    case WMP_STR: case WMP_BIN: return wmp_read_bytes_any(r, &dummy, &n);
    case WMP_ARRAY:
        if (!wmp_read_array(r, &n)) return 0;
        while (n--) if (!wmp_skip_depth(r, depth + 1)) return 0;
        return 1;
    case WMP_MAP:
        if (!wmp_read_map(r, &n)) return 0;
        while (n--)
            if (!wmp_skip_depth(r, depth + 1) || !wmp_skip_depth(r, depth + 1)) return 0;
        return 1;
    case WMP_EXT: {
        uint8_t b = *r->p;
        size_t head, size;
        if (b >= 0xd4 && b <= 0xd8) { head = 2; size = (size_t)1 << (b - 0xd4); }
        else {
            int lenbytes = b == 0xc7 ? 1 : b == 0xc8 ? 2 : 4;
            uint32_t l;
            if (!wmp_need(r, 1 + (size_t)lenbytes)) return 0;
            l = (uint32_t)wmp_be(r->p + 1, lenbytes);
            head = 2 + (size_t)lenbytes;
            size = l;
        }
        /* head + size can wrap where size_t is 32 bits (wasm32): check apart */
        if (!wmp_need(r, head) || wmp_remaining(r) - head < size) return wmp_fail(r);
        r->p += head + size;
        return 1;
    }
    default: return wmp_fail(r);
    }
}

/* Skips one value of any type (nesting limited to WMP_MAX_DEPTH). */
static inline int wmp_skip(wmp_reader *r) { return wmp_skip_depth(r, 0); }

/* Does the length-delimited string equal the NUL-terminated literal? */
static inline int wmp_eq(const char *s, uint32_t len, const char *lit) {
    uint32_t i = 0;
    for (; i < len; i++)
        if (lit[i] == 0 || lit[i] != s[i]) return 0;
    return lit[i] == 0;
}

/* ---- writing ------------------------------------------------------------ */

static inline void wmp_writer_init(wmp_writer *w, void *buf, size_t cap, wmp_grow_fn grow,
                                   void *grow_ctx) {
    w->buf = (uint8_t *)buf;
    w->len = 0;
    w->cap = buf ? cap : 0;
    w->err = 0;
    w->grow = grow;
    w->grow_ctx = grow_ctx;
}

static inline int wmp_reserve(wmp_writer *w, size_t n) {
    if (w->err) return 0;
    if (w->cap - w->len >= n) return 1;
    if (!w->grow) { w->err = 1; return 0; }
    size_t cap = w->cap ? w->cap : 64;
    while (cap - w->len < n) {
        if (cap > ((size_t)-1) / 2) { w->err = 1; return 0; }
        cap *= 2;
    }
    uint8_t *nb = (uint8_t *)w->grow(w->grow_ctx, w->buf, cap);
    if (!nb) { w->err = 1; return 0; }
    w->buf = nb;
    w->cap = cap;
    return 1;
}

static inline void wmp_put(wmp_writer *w, const void *data, size_t n) {
    if (!wmp_reserve(w, n)) return;
    wmp_copy(w->buf + w->len, data, n);
    w->len += n;
}

static inline void wmp_put_be(wmp_writer *w, uint8_t tag, uint64_t v, int n) {
    uint8_t tmp[9];
    tmp[0] = tag;
    for (int i = 0; i < n; i++) tmp[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    wmp_put(w, tmp, 1 + (size_t)n);
}

static inline void wmp_write_nil(wmp_writer *w) { uint8_t b = 0xc0; wmp_put(w, &b, 1); }

static inline void wmp_write_bool(wmp_writer *w, int v) {
    uint8_t b = v ? 0xc3 : 0xc2;
    wmp_put(w, &b, 1);
}

static inline void wmp_write_uint(wmp_writer *w, uint64_t v) {
    if (v <= 0x7f) { uint8_t b = (uint8_t)v; wmp_put(w, &b, 1); }
    else if (v <= 0xff) wmp_put_be(w, 0xcc, v, 1);
    else if (v <= 0xffff) wmp_put_be(w, 0xcd, v, 2);
    else if (v <= 0xffffffffu) wmp_put_be(w, 0xce, v, 4);
    else wmp_put_be(w, 0xcf, v, 8);
}

static inline void wmp_write_int(wmp_writer *w, int64_t v) {
    if (v >= 0) { wmp_write_uint(w, (uint64_t)v); return; }
    if (v >= -32) { uint8_t b = (uint8_t)(int8_t)v; wmp_put(w, &b, 1); }
    else if (v >= -128) wmp_put_be(w, 0xd0, (uint64_t)v, 1);
    else if (v >= -32768) wmp_put_be(w, 0xd1, (uint64_t)v, 2);
    else if (v >= -2147483647 - 1) wmp_put_be(w, 0xd2, (uint64_t)v, 4);
    else wmp_put_be(w, 0xd3, (uint64_t)v, 8);
}

static inline void wmp_write_str(wmp_writer *w, const char *s, size_t len) {
    if (len <= 31) { uint8_t b = (uint8_t)(0xa0 | len); wmp_put(w, &b, 1); }
    else if (len <= 0xff) wmp_put_be(w, 0xd9, len, 1);
    else if (len <= 0xffff) wmp_put_be(w, 0xda, len, 2);
    else if (len <= 0xffffffffu) wmp_put_be(w, 0xdb, len, 4);
    else { w->err = 1; return; }
    wmp_put(w, s, len);
}

static inline void wmp_write_cstr(wmp_writer *w, const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    wmp_write_str(w, s, n);
}

static inline void wmp_write_bin(wmp_writer *w, const void *data, size_t len) {
    if (len <= 0xff) wmp_put_be(w, 0xc4, len, 1);
    else if (len <= 0xffff) wmp_put_be(w, 0xc5, len, 2);
    else if (len <= 0xffffffffu) wmp_put_be(w, 0xc6, len, 4);
    else { w->err = 1; return; }
    wmp_put(w, data, len);
}

static inline void wmp_write_array(wmp_writer *w, uint32_t n) {
    if (n <= 15) { uint8_t b = (uint8_t)(0x90 | n); wmp_put(w, &b, 1); }
    else if (n <= 0xffff) wmp_put_be(w, 0xdc, n, 2);
    else wmp_put_be(w, 0xdd, n, 4);
}

static inline void wmp_write_map(wmp_writer *w, uint32_t n) {
    if (n <= 15) { uint8_t b = (uint8_t)(0x80 | n); wmp_put(w, &b, 1); }
    else if (n <= 0xffff) wmp_put_be(w, 0xde, n, 2);
    else wmp_put_be(w, 0xdf, n, 4);
}

#endif /* WASCC_MSGPACK_H */
