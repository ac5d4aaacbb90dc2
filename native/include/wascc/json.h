/*
 * wascc/json.h - a tiny JSON writer for C actors, on a wmp_writer's buffer.
 *
 * Freestanding.  Strings are escaped per RFC 8259; bytes that are not valid
 * UTF-8 are written as U+FFFD, so the output is always valid JSON.
 *
 *   wmp_writer w; wapc_writer(&w);
 *   wjson_raw(&w, "{\"path\":"); wjson_str(&w, q.path.p, q.path.n);
 *   wjson_raw(&w, "}");
 */
#ifndef WASCC_JSON_H
#define WASCC_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "wascc/msgpack.h"

static inline void wjson_raw(wmp_writer *w, const char *text) {
    size_t n = 0;
    while (text[n]) n++;
    wmp_put(w, text, n);
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if it is not one. */
static inline size_t wjson_utf8_len(const uint8_t *s, size_t left) {
    uint8_t b = s[0];
    size_t n;
    uint32_t cp;
    if (b < 0x80) return 1;
    if (b >= 0xc2 && b <= 0xdf) { n = 2; cp = b & 0x1f; }
    else if (b >= 0xe0 && b <= 0xef) { n = 3; cp = b & 0x0f; }
    else if (b >= 0xf0 && b <= 0xf4) { n = 4; cp = b & 0x07; }
    else return 0;
    if (left < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

static inline void wjson_str(wmp_writer *w, const void *data, size_t len) {
    static const char hex[] = "0123456789abcdef";
    const uint8_t *s = (const uint8_t *)data;
    wmp_put(w, "\"", 1);
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            wmp_put(w, esc, 2);
            i++;
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            if (c == '\n') wmp_put(w, "\\n", 2);
            else if (c == '\r') wmp_put(w, "\\r", 2);
            else if (c == '\t') wmp_put(w, "\\t", 2);
            else wmp_put(w, esc, 6);
            i++;
        } else {
            size_t n = wjson_utf8_len(s + i, len - i);
            if (n) {
                wmp_put(w, s + i, n);
                i += n;
            } else {
                wmp_put(w, "\xef\xbf\xbd", 3); /* U+FFFD */
                i++;
            }
        }
    }
    wmp_put(w, "\"", 1);
}

static inline void wjson_cstr(wmp_writer *w, const char *text) {
    size_t n = 0;
    while (text[n]) n++;
    wjson_str(w, text, n);
}

static inline void wjson_int(wmp_writer *w, int64_t v) {
    char buf[24];
    int i = 23;
    uint64_t u = v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
    buf[i] = 0;
    do {
        buf[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) buf[--i] = '-';
    wmp_put(w, buf + i, (size_t)(23 - i));
}

#endif /* WASCC_JSON_H */
