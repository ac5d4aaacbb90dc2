/*
 * wascc/actor.h - a header-only waPC guest SDK for writing wascc actors in C.
 *
 * Build an actor with clang alone (no libc needed; wasi-libc optional):
 *
 *   clang --target=wasm32 -nostdlib -O2 -I native/include \
 *         -Wl,--no-entry -Wl,--strip-all -o actor.wasm actor.c
 *
 * then sign it (`wascc claims sign`).  Include this header in exactly one .c
 * file of an actor: it defines the exports `__guest_call` and `wapc_init`.
 * Other files may include <wascc/contracts.h> for the typed codecs.
 *
 * A whole actor:
 *
 *   #include <wascc/actor.h>
 *
 *   static wapc_result echo(const uint8_t *msg, size_t len) {
 *       return wapc_ok(msg, len);
 *   }
 *
 *   void wapc_register_handlers(void) {      // called once, from wapc_init
 *       wapc_register("Echo", echo);
 *   }
 *
 * Memory: every allocation (wapc_alloc, host-call results, msgpack writers)
 * comes from a per-call arena that is reset when the next call starts, so a
 * handler never frees anything.  Data that must outlive a call belongs in
 * static storage.  The arena grows linear memory as needed; allocation
 * failure makes the call fail with "out of memory", never a trap.
 *
 * Payloads: use <wascc/contracts.h> (included) to decode and encode the
 * contract structs with bounds checks; a malformed payload makes a decoder
 * return -1, which a handler turns into wapc_error(...).
 */
#ifndef WASCC_ACTOR_H
#define WASCC_ACTOR_H

#include <stddef.h>
#include <stdint.h>

#include "wascc/contracts.h"
#include "wascc/msgpack.h"

#ifndef WAPC_MAX_HANDLERS
#define WAPC_MAX_HANDLERS 64
#endif

/* ---- the waPC imports (CONTRACTS section 1) ------------------------------- */

#define WAPC_IMPORT(name) __attribute__((import_module("wapc"), import_name(#name)))

WAPC_IMPORT(__guest_request) void __guest_request(uint8_t *op_ptr, uint8_t *ptr);
WAPC_IMPORT(__guest_response) void __guest_response(const uint8_t *ptr, size_t len);
WAPC_IMPORT(__guest_error) void __guest_error(const uint8_t *ptr, size_t len);
WAPC_IMPORT(__host_call)
int32_t __host_call(const uint8_t *bd, size_t bd_len, const uint8_t *ns, size_t ns_len,
                    const uint8_t *op, size_t op_len, const uint8_t *ptr, size_t len);
WAPC_IMPORT(__host_response_len) size_t __host_response_len(void);
WAPC_IMPORT(__host_response) void __host_response(uint8_t *ptr);
WAPC_IMPORT(__host_error_len) size_t __host_error_len(void);
WAPC_IMPORT(__host_error) void __host_error(uint8_t *ptr);
WAPC_IMPORT(__console_log) void __console_log(const uint8_t *ptr, size_t len);

/* ---- what clang may call even without libc -------------------------------- */

#ifndef WAPC_HAVE_LIBC
__attribute__((weak)) void *memcpy(void *dst, const void *src, size_t n) {
    uint8_t *d = (uint8_t *)dst;
    const uint8_t *s = (const uint8_t *)src;
    while (n--) *d++ = *s++;
    return dst;
}

__attribute__((weak)) void *memmove(void *dst, const void *src, size_t n) {
    uint8_t *d = (uint8_t *)dst;
    const uint8_t *s = (const uint8_t *)src;
    if (d < s) {
        while (n--) *d++ = *s++;
    } else {
        while (n--) d[n] = s[n];
    }
    return dst;
}

__attribute__((weak)) void *memset(void *dst, int c, size_t n) {
    uint8_t *d = (uint8_t *)dst;
    while (n--) *d++ = (uint8_t)c;
    return dst;
}

__attribute__((weak)) int memcmp(const void *a, const void *b, size_t n) {
    const uint8_t *x = (const uint8_t *)a, *y = (const uint8_t *)b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
}
#endif

static inline size_t wapc_strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

/* ---- the per-call arena --------------------------------------------------- */

extern unsigned char __heap_base;

static uint8_t *wapc__arena_top;
static uint8_t *wapc__arena_end;

static inline void wapc__arena_reset(void) {
    wapc__arena_top = (uint8_t *)(((uintptr_t)&__heap_base + 15) & ~(uintptr_t)15);
    wapc__arena_end = (uint8_t *)(__builtin_wasm_memory_size(0) * 65536u);
}

/* n bytes, 16-aligned, valid until the next call starts; NULL if memory is
 * exhausted (the host's memory cap). */
static void *wapc_alloc(size_t n) {
    if (!wapc__arena_top) wapc__arena_reset();
    uintptr_t top = (uintptr_t)wapc__arena_top;
    uintptr_t need = (n + 15) & ~(size_t)15;
    if (need < n || top + need < top) return NULL; /* overflow: more than memory can hold */
    if (top + need > (uintptr_t)wapc__arena_end) {
        size_t missing = top + need - (uintptr_t)wapc__arena_end;
        size_t pages = (missing + 65535) / 65536;
        if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) return NULL;
        wapc__arena_end += pages * 65536;
    }
    wapc__arena_top = (uint8_t *)(top + need);
    return (void *)top;
}

/* The grow callback for msgpack writers: copies into a bigger arena block. */
static void *wapc__grow(void *ctx, void *old, size_t cap) {
    wmp_writer *w = (wmp_writer *)ctx;
    uint8_t *fresh = (uint8_t *)wapc_alloc(cap);
    if (fresh && old) wmp_copy(fresh, old, w->len);
    return fresh;
}

/* A msgpack writer whose buffer lives in the arena. */
static inline void wapc_writer(wmp_writer *w) {
    wmp_writer_init(w, NULL, 0, wapc__grow, w);
}

/* ---- results ---------------------------------------------------------------- */

typedef struct wapc_result {
    const uint8_t *data; /* the response, or the error text */
    size_t len;
    int ok;
} wapc_result;

static inline wapc_result wapc_ok(const void *data, size_t len) {
    wapc_result r = {(const uint8_t *)data, len, 1};
    return r;
}

static inline wapc_result wapc_ok_writer(const wmp_writer *w) {
    wapc_result r = {w->buf, w->len, !w->err};
    if (w->err) {
        r.data = (const uint8_t *)"out of memory while encoding the response";
        r.len = wapc_strlen((const char *)r.data);
    }
    return r;
}

static inline wapc_result wapc_error(const char *message) {
    wapc_result r = {(const uint8_t *)message, wapc_strlen(message), 0};
    return r;
}

static inline wapc_result wapc_error_bytes(const void *data, size_t len) {
    wapc_result r = {(const uint8_t *)data, len, 0};
    return r;
}

/* An error "prefix: detail" built in the arena. */
static wapc_result wapc_error2(const char *prefix, const void *detail, size_t detail_len) {
    size_t a = wapc_strlen(prefix);
    uint8_t *text = (uint8_t *)wapc_alloc(a + detail_len);
    if (!text) return wapc_error(prefix);
    wmp_copy(text, prefix, a);
    wmp_copy(text + a, detail, detail_len);
    return wapc_error_bytes(text, a + detail_len);
}

/* An HTTP response (the wascc:http_server contract) as this call's result;
 * `content_type` may be NULL for no Content-Type header. */
static inline wapc_result wapc_http_respond(uint32_t status_code, const char *status,
                                            const char *content_type, const void *body,
                                            size_t len) {
    wmp_writer out;
    wapc_writer(&out);
    wascc_header headers[] = {{"Content-Type", content_type}};
    wascc_http_response_write(&out, status_code, status, headers, content_type ? 1 : 0, body,
                              len);
    return wapc_ok_writer(&out);
}

/* ---- handlers ----------------------------------------------------------------- */

typedef wapc_result (*wapc_handler)(const uint8_t *msg, size_t len);

static struct {
    const char *operation;
    wapc_handler handler;
} wapc__handlers[WAPC_MAX_HANDLERS];
static int wapc__n_handlers;

/* Routes `operation` to `handler`; 0, or -1 when the table is full. */
static int wapc_register(const char *operation, wapc_handler handler) {
    for (int i = 0; i < wapc__n_handlers; i++) {
        if (wmp_eq(wapc__handlers[i].operation, (uint32_t)wapc_strlen(wapc__handlers[i].operation),
                   operation)) {
            wapc__handlers[i].handler = handler;
            return 0;
        }
    }
    if (wapc__n_handlers == WAPC_MAX_HANDLERS) return -1;
    wapc__handlers[wapc__n_handlers].operation = operation;
    wapc__handlers[wapc__n_handlers].handler = handler;
    wapc__n_handlers++;
    return 0;
}

/* Defined by the actor: register its handlers (called once). */
void wapc_register_handlers(void);

__attribute__((export_name("wapc_init"))) void wapc_init(void) { wapc_register_handlers(); }

/* ---- logging and host calls ----------------------------------------------------- */

static inline void wapc_log_bytes(const void *text, size_t len) {
    __console_log((const uint8_t *)text, len);
}

static inline void wapc_log(const char *text) { wapc_log_bytes(text, wapc_strlen(text)); }

/* Calls `operation` of the provider bound at (capability, binding), or of an
 * actor when `capability` is its public key.  The result (response or host
 * error text) lives in the arena. */
static wapc_result wapc_host_call(const char *binding, const char *capability,
                                  const char *operation, const void *payload, size_t len) {
    int32_t ok = __host_call((const uint8_t *)binding, wapc_strlen(binding),
                             (const uint8_t *)capability, wapc_strlen(capability),
                             (const uint8_t *)operation, wapc_strlen(operation),
                             (const uint8_t *)payload, len);
    size_t n = ok ? __host_response_len() : __host_error_len();
    uint8_t *buf = (uint8_t *)wapc_alloc(n ? n : 1);
    if (!buf) return wapc_error("out of memory reading a host call result");
    if (ok) __host_response(buf);
    else __host_error(buf);
    wapc_result r = {buf, n, ok != 0};
    if (!ok && !n) r = wapc_error("host call failed without a message");
    return r;
}

/* The same, sending what a msgpack writer holds. */
static inline wapc_result wapc_host_call_writer(const char *binding, const char *capability,
                                                const char *operation, const wmp_writer *w) {
    if (w->err) return wapc_error("out of memory while encoding a host call");
    return wapc_host_call(binding, capability, operation, w->buf, w->len);
}

/* ---- the entry point --------------------------------------------------------------- */

__attribute__((export_name("__guest_call"))) int32_t __guest_call(int32_t op_len,
                                                                 int32_t msg_len) {
    wapc__arena_reset();
    if (op_len < 0 || msg_len < 0) return 0;
    uint8_t *op = (uint8_t *)wapc_alloc((size_t)op_len + 1);
    uint8_t *msg = (uint8_t *)wapc_alloc((size_t)msg_len + 1);
    if (!op || !msg) {
        const char *oom = "out of memory receiving the request";
        __guest_error((const uint8_t *)oom, wapc_strlen(oom));
        return 0;
    }
    __guest_request(op, msg);
    for (int i = 0; i < wapc__n_handlers; i++) {
        if (wmp_eq((const char *)op, (uint32_t)op_len, wapc__handlers[i].operation)) {
            wapc_result r = wapc__handlers[i].handler(msg, (size_t)msg_len);
            if (r.ok) {
                __guest_response(r.data, r.len);
                return 1;
            }
            __guest_error(r.data, r.len);
            return 0;
        }
    }
    wapc_result r = wapc_error2("unknown operation: ", op, (size_t)op_len);
    __guest_error(r.data, r.len);
    return 0;
}

#endif /* WASCC_ACTOR_H */
