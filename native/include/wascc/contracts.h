/*
 * wascc/contracts.h - typed msgpack codecs for the wascc capability contracts
 * (CONTRACTS sections 2 and 3), for C actors and C providers.
 *
 * Freestanding (needs only <stdint.h>, <stddef.h> and wascc/msgpack.h) and
 * allocation-free when decoding: strings and bytes in a decoded struct point
 * into the payload they came from, and maps (HTTP headers) are read on demand
 * by walking the payload again.  Every decoder checks bounds and types and
 * returns 0 on success, -1 on a payload that is not the struct; unknown keys
 * are ignored and missing optional keys keep their defaults, as the waSCC
 * codec does.  Encoders write into a wmp_writer (see msgpack.h).
 *
 * Structs and their wire names are those of CONTRACTS; a field called `foo`
 * here is written as the contract spells it (queryString, statusCode, ...).
 */
#ifndef WASCC_CONTRACTS_H
#define WASCC_CONTRACTS_H

#include <stddef.h>
#include <stdint.h>

#include "wascc/msgpack.h"

/* A length-delimited string pointing into a payload (not NUL-terminated). */
typedef struct wascc_str {
    const char *p;
    uint32_t n;
} wascc_str;

static inline wascc_str wascc_cstr(const char *s) {
    wascc_str r = {s, 0};
    while (s[r.n]) r.n++;
    return r;
}

static inline int wascc_str_eq(wascc_str a, const char *lit) { return wmp_eq(a.p, a.n, lit); }

static inline int wascc_str_ieq(wascc_str a, const char *lit) {
    uint32_t i = 0;
    for (; i < a.n; i++) {
        char x = a.p[i], y = lit[i];
        if (!y) return 0;
        if (x >= 'A' && x <= 'Z') x = (char)(x + 32);
        if (y >= 'A' && y <= 'Z') y = (char)(y + 32);
        if (x != y) return 0;
    }
    return lit[i] == 0;
}

/* ---- decoding scaffolding ------------------------------------------------ */

/* Calls `field(ctx, key, reader)` for each key of a map at the reader;
 * `field` must consume exactly one value (or wmp_skip it).  -1 on garbage. */
typedef int (*wascc_field_fn)(void *ctx, wascc_str key, wmp_reader *r);

static inline int wascc_read_struct(wmp_reader *r, void *ctx, wascc_field_fn field) {
    uint32_t n;
    if (!wmp_read_map(r, &n)) return -1;
    for (uint32_t i = 0; i < n; i++) {
        wascc_str key;
        if (!wmp_read_str(r, &key.p, &key.n)) return -1;
        if (field(ctx, key, r) != 0 || r->err) return -1;
    }
    return 0;
}

static inline int wascc_decode(const void *data, size_t len, void *ctx, wascc_field_fn field) {
    wmp_reader r;
    wmp_reader_init(&r, data, len);
    return wascc_read_struct(&r, ctx, field);
}

static inline int wascc_read_string(wmp_reader *r, wascc_str *out) {
    if (wmp_peek(r) == WMP_NIL) {
        out->p = "";
        out->n = 0;
        return wmp_read_nil(r) ? 0 : -1;
    }
    return wmp_read_str(r, &out->p, &out->n) ? 0 : -1;
}

static inline int wascc_read_i64(wmp_reader *r, int64_t *out) {
    return wmp_read_int(r, out) ? 0 : -1;
}

static inline int wascc_read_flag(wmp_reader *r, int *out) {
    return wmp_read_bool(r, out) ? 0 : -1;
}

/* A string-to-string map left in place: iterate with wascc_map_next. */
typedef struct wascc_map {
    const uint8_t *at;
    size_t len;
    uint32_t count;
} wascc_map;

static inline int wascc_read_map_in_place(wmp_reader *r, wascc_map *out) {
    const uint8_t *start = r->p;
    uint32_t n;
    if (wmp_peek(r) == WMP_NIL) {
        out->at = NULL;
        out->len = 0;
        out->count = 0;
        return wmp_read_nil(r) ? 0 : -1;
    }
    if (!wmp_read_map(r, &n)) return -1;
    for (uint32_t i = 0; i < n; i++) {
        const char *s;
        uint32_t sl;
        if (!wmp_read_str(r, &s, &sl) || !wmp_read_str(r, &s, &sl)) return -1;
    }
    out->at = start;
    out->len = (size_t)(r->p - start);
    out->count = n;
    return 0;
}

/* Iterates a wascc_map: `*i` starts at 0; returns 0 while there is a pair. */
typedef struct wascc_map_iter {
    wmp_reader r;
    uint32_t left;
} wascc_map_iter;

static inline void wascc_map_begin(const wascc_map *m, wascc_map_iter *it) {
    wmp_reader_init(&it->r, m->at, m->len);
    it->left = 0;
    if (m->at && wmp_read_map(&it->r, &it->left) == 0) it->left = 0;
}

static inline int wascc_map_next(wascc_map_iter *it, wascc_str *key, wascc_str *value) {
    if (!it->left) return -1;
    it->left--;
    if (!wmp_read_str(&it->r, &key->p, &key->n) || !wmp_read_str(&it->r, &value->p, &value->n))
        return -1;
    return 0;
}

/* The value of `name` (case-insensitive, as HTTP header names are). */
static inline int wascc_map_get(const wascc_map *m, const char *name, wascc_str *value) {
    wascc_map_iter it;
    wascc_str key;
    wascc_map_begin(m, &it);
    while (wascc_map_next(&it, &key, value) == 0)
        if (wascc_str_ieq(key, name)) return 0;
    return -1;
}

/* An array of strings left in place (Range / SetQuery / SetUnion replies). */
typedef struct wascc_strings {
    const uint8_t *at;
    size_t len;
    uint32_t count;
} wascc_strings;

static inline int wascc_read_strings_in_place(wmp_reader *r, wascc_strings *out) {
    const uint8_t *start = r->p;
    uint32_t n;
    if (!wmp_read_array(r, &n)) return -1;
    for (uint32_t i = 0; i < n; i++) {
        const char *s;
        uint32_t sl;
        if (!wmp_read_str(r, &s, &sl)) return -1;
    }
    out->at = start;
    out->len = (size_t)(r->p - start);
    out->count = n;
    return 0;
}

/* The i-th string of a wascc_strings (0-based); -1 past the end. */
static inline int wascc_strings_at(const wascc_strings *s, uint32_t index, wascc_str *out) {
    wmp_reader r;
    uint32_t n;
    wmp_reader_init(&r, s->at, s->len);
    if (!wmp_read_array(&r, &n) || index >= n) return -1;
    for (uint32_t i = 0; i <= index; i++)
        if (!wmp_read_str(&r, &out->p, &out->n)) return -1;
    return 0;
}

static inline void wascc_write_key_str(wmp_writer *w, const char *key, wascc_str value) {
    wmp_write_cstr(w, key);
    wmp_write_str(w, value.p, value.n);
}

/* ---- core (section 2) ------------------------------------------------------ */

typedef struct wascc_health_response {
    int healthy;
    wascc_str message;
} wascc_health_response;

static inline void wascc_health_response_write(wmp_writer *w, int healthy, const char *msg) {
    wmp_write_map(w, 2);
    wmp_write_cstr(w, "healthy");
    wmp_write_bool(w, healthy);
    wmp_write_cstr(w, "message");
    wmp_write_cstr(w, msg);
}

/* ---- wascc:http_server / wascc:http_client ------------------------------ */

typedef struct wascc_http_request {
    wascc_str method, path, query_string;
    wascc_map header;
    const uint8_t *body;
    uint32_t body_len;
} wascc_http_request;

static inline int wascc__http_request_field(void *ctx, wascc_str key, wmp_reader *r) {
    wascc_http_request *q = (wascc_http_request *)ctx;
    if (wascc_str_eq(key, "method")) return wascc_read_string(r, &q->method);
    if (wascc_str_eq(key, "path")) return wascc_read_string(r, &q->path);
    if (wascc_str_eq(key, "queryString")) return wascc_read_string(r, &q->query_string);
    if (wascc_str_eq(key, "header")) return wascc_read_map_in_place(r, &q->header);
    if (wascc_str_eq(key, "body")) {
        if (wmp_peek(r) == WMP_NIL) return wmp_read_nil(r) ? 0 : -1;
        return wmp_read_bin(r, &q->body, &q->body_len) ? 0 : -1;
    }
    return wmp_skip(r) ? 0 : -1;
}

static inline int wascc_http_request_decode(const void *data, size_t len, wascc_http_request *q) {
    wascc_http_request empty = {{"GET", 3}, {"/", 1}, {"", 0}, {0, 0, 0}, 0, 0};
    *q = empty;
    return wascc_decode(data, len, q, wascc__http_request_field);
}

static inline void wascc_http_request_write(wmp_writer *w, const wascc_http_request *q) {
    wmp_write_map(w, 5);
    wascc_write_key_str(w, "method", q->method);
    wascc_write_key_str(w, "path", q->path);
    wascc_write_key_str(w, "queryString", q->query_string);
    wmp_write_cstr(w, "header");
    if (q->header.at) wmp_put(w, q->header.at, q->header.len);
    else wmp_write_map(w, 0);
    wmp_write_cstr(w, "body");
    wmp_write_bin(w, q->body, q->body_len);
}

/* Headers for a response: `n` pairs of NUL-terminated strings. */
typedef struct wascc_header {
    const char *name;
    const char *value;
} wascc_header;

static inline void wascc_http_response_write(wmp_writer *w, uint32_t status_code,
                                             const char *status, const wascc_header *headers,
                                             uint32_t n_headers, const void *body,
                                             size_t body_len) {
    wmp_write_map(w, 4);
    wmp_write_cstr(w, "statusCode");
    wmp_write_uint(w, status_code);
    wmp_write_cstr(w, "status");
    wmp_write_cstr(w, status);
    wmp_write_cstr(w, "header");
    wmp_write_map(w, n_headers);
    for (uint32_t i = 0; i < n_headers; i++) {
        wmp_write_cstr(w, headers[i].name);
        wmp_write_cstr(w, headers[i].value);
    }
    wmp_write_cstr(w, "body");
    wmp_write_bin(w, body, body_len);
}

typedef struct wascc_http_response {
    uint32_t status_code;
    wascc_str status;
    wascc_map header;
    const uint8_t *body;
    uint32_t body_len;
} wascc_http_response;

static inline int wascc__http_response_field(void *ctx, wascc_str key, wmp_reader *r) {
    wascc_http_response *s = (wascc_http_response *)ctx;
    if (wascc_str_eq(key, "statusCode")) {
        uint64_t v;
        if (!wmp_read_uint(r, &v) || v > 0xffffffffu) return -1;
        s->status_code = (uint32_t)v;
        return 0;
    }
    if (wascc_str_eq(key, "status")) return wascc_read_string(r, &s->status);
    if (wascc_str_eq(key, "header")) return wascc_read_map_in_place(r, &s->header);
    if (wascc_str_eq(key, "body")) {
        if (wmp_peek(r) == WMP_NIL) return wmp_read_nil(r) ? 0 : -1;
        return wmp_read_bin(r, &s->body, &s->body_len) ? 0 : -1;
    }
    return wmp_skip(r) ? 0 : -1;
}

static inline int wascc_http_response_decode(const void *data, size_t len,
                                             wascc_http_response *s) {
    wascc_http_response empty = {200, {"OK", 2}, {0, 0, 0}, 0, 0};
    *s = empty;
    return wascc_decode(data, len, s, wascc__http_response_field);
}

/* ---- wascc:keyvalue ------------------------------------------------------ */

/* {key} requests: Get, Del, Clear, SetQuery, KeyExists. */
static inline void wascc_kv_key_write(wmp_writer *w, const char *key) {
    wmp_write_map(w, 1);
    wmp_write_cstr(w, "key");
    wmp_write_cstr(w, key);
}

/* {key, value} requests: Push, ListItemDelete, SetAdd, SetRemove. */
static inline void wascc_kv_key_value_write(wmp_writer *w, const char *key, const char *value) {
    wmp_write_map(w, 2);
    wmp_write_cstr(w, "key");
    wmp_write_cstr(w, key);
    wmp_write_cstr(w, "value");
    wmp_write_cstr(w, value);
}

static inline void wascc_kv_set_write(wmp_writer *w, const char *key, const char *value,
                                      int32_t expires) {
    wmp_write_map(w, 3);
    wmp_write_cstr(w, "key");
    wmp_write_cstr(w, key);
    wmp_write_cstr(w, "value");
    wmp_write_cstr(w, value);
    wmp_write_cstr(w, "expires");
    wmp_write_int(w, expires);
}

static inline void wascc_kv_add_write(wmp_writer *w, const char *key, int32_t value) {
    wmp_write_map(w, 2);
    wmp_write_cstr(w, "key");
    wmp_write_cstr(w, key);
    wmp_write_cstr(w, "value");
    wmp_write_int(w, value);
}

static inline void wascc_kv_range_write(wmp_writer *w, const char *key, int32_t start,
                                        int32_t stop) {
    wmp_write_map(w, 3);
    wmp_write_cstr(w, "key");
    wmp_write_cstr(w, key);
    wmp_write_cstr(w, "start");
    wmp_write_int(w, start);
    wmp_write_cstr(w, "stop");
    wmp_write_int(w, stop);
}

/* SetUnion / SetIntersection: {keys: [...]} */
static inline void wascc_kv_keys_write(wmp_writer *w, const char *const *keys, uint32_t n) {
    wmp_write_map(w, 1);
    wmp_write_cstr(w, "keys");
    wmp_write_array(w, n);
    for (uint32_t i = 0; i < n; i++) wmp_write_cstr(w, keys[i]);
}

/* Get / KeyExists reply: {value, exists}; also Set ({value}) and Del ({key}). */
typedef struct wascc_kv_value {
    wascc_str value;
    int exists;
    int64_t number; /* Add's {value: i32}, ListResponse's newCount */
    wascc_strings values;
} wascc_kv_value;

static inline int wascc__kv_field(void *ctx, wascc_str key, wmp_reader *r) {
    wascc_kv_value *v = (wascc_kv_value *)ctx;
    if (wascc_str_eq(key, "exists")) return wascc_read_flag(r, &v->exists);
    if (wascc_str_eq(key, "value") || wascc_str_eq(key, "key")) {
        if (wmp_peek(r) == WMP_INT) return wascc_read_i64(r, &v->number);
        return wascc_read_string(r, &v->value);
    }
    if (wascc_str_eq(key, "newCount")) return wascc_read_i64(r, &v->number);
    if (wascc_str_eq(key, "values")) return wascc_read_strings_in_place(r, &v->values);
    return wmp_skip(r) ? 0 : -1;
}

/* Decodes any keyvalue reply: GetResponse, SetResponse, DelResponse,
 * AddResponse (number), ListResponse (number = newCount), ListRangeResponse
 * and SetQueryResponse (values). */
static inline int wascc_kv_reply_decode(const void *data, size_t len, wascc_kv_value *v) {
    wascc_kv_value empty = {{"", 0}, 0, 0, {0, 0, 0}};
    *v = empty;
    return wascc_decode(data, len, v, wascc__kv_field);
}

/* ---- wascc:logging --------------------------------------------------------- */

enum { WASCC_LOG_OFF, WASCC_LOG_ERROR, WASCC_LOG_WARN, WASCC_LOG_INFO, WASCC_LOG_DEBUG,
       WASCC_LOG_TRACE };

static inline void wascc_write_log_write(wmp_writer *w, uint32_t level, const char *body) {
    wmp_write_map(w, 2);
    wmp_write_cstr(w, "level");
    wmp_write_uint(w, level);
    wmp_write_cstr(w, "body");
    wmp_write_cstr(w, body);
}

/* ---- wascc:messaging ------------------------------------------------------- */

typedef struct wascc_broker_message {
    wascc_str subject, reply_to;
    const uint8_t *body;
    uint32_t body_len;
} wascc_broker_message;

static inline int wascc__broker_field(void *ctx, wascc_str key, wmp_reader *r) {
    wascc_broker_message *m = (wascc_broker_message *)ctx;
    if (wascc_str_eq(key, "subject")) return wascc_read_string(r, &m->subject);
    /* replyTo as the contract writes it; reply_to as some SDKs did (CONTRACTS section 3) */
    if (wascc_str_eq(key, "replyTo") || wascc_str_eq(key, "reply_to"))
        return wascc_read_string(r, &m->reply_to);
    if (wascc_str_eq(key, "body")) {
        if (wmp_peek(r) == WMP_NIL) return wmp_read_nil(r) ? 0 : -1;
        return wmp_read_bin(r, &m->body, &m->body_len) ? 0 : -1;
    }
    return wmp_skip(r) ? 0 : -1;
}

static inline int wascc_broker_message_decode(const void *data, size_t len,
                                              wascc_broker_message *m) {
    wascc_broker_message empty = {{"", 0}, {"", 0}, 0, 0};
    *m = empty;
    if (wascc_decode(data, len, m, wascc__broker_field) != 0) return -1;
    return m->subject.n ? 0 : -1;
}

static inline void wascc_broker_message_write(wmp_writer *w, const char *subject,
                                              const char *reply_to, const void *body,
                                              size_t body_len) {
    wmp_write_map(w, 3);
    wmp_write_cstr(w, "subject");
    wmp_write_cstr(w, subject);
    wmp_write_cstr(w, "replyTo");
    wmp_write_cstr(w, reply_to ? reply_to : "");
    wmp_write_cstr(w, "body");
    wmp_write_bin(w, body, body_len);
}

static inline void wascc_request_message_write(wmp_writer *w, const char *subject,
                                               const void *body, size_t body_len,
                                               int64_t timeout_ms) {
    wmp_write_map(w, 3);
    wmp_write_cstr(w, "subject");
    wmp_write_cstr(w, subject);
    wmp_write_cstr(w, "body");
    wmp_write_bin(w, body, body_len);
    wmp_write_cstr(w, "timeout");
    wmp_write_int(w, timeout_ms);
}

/* ---- wascc:extras ---------------------------------------------------------- */

static inline void wascc_generator_request_write(wmp_writer *w, int guid, int sequence,
                                                 int random, uint32_t min, uint32_t max) {
    wmp_write_map(w, 5);
    wmp_write_cstr(w, "guid");
    wmp_write_bool(w, guid);
    wmp_write_cstr(w, "sequence");
    wmp_write_bool(w, sequence);
    wmp_write_cstr(w, "random");
    wmp_write_bool(w, random);
    wmp_write_cstr(w, "min");
    wmp_write_uint(w, min);
    wmp_write_cstr(w, "max");
    wmp_write_uint(w, max);
}

typedef struct wascc_generator_result {
    wascc_str guid; /* empty when nil */
    uint64_t sequence_number;
    uint64_t random_number;
} wascc_generator_result;

static inline int wascc__generator_field(void *ctx, wascc_str key, wmp_reader *r) {
    wascc_generator_result *g = (wascc_generator_result *)ctx;
    if (wascc_str_eq(key, "guid")) return wascc_read_string(r, &g->guid);
    if (wascc_str_eq(key, "sequenceNumber"))
        return wmp_read_uint(r, &g->sequence_number) ? 0 : -1;
    if (wascc_str_eq(key, "randomNumber")) return wmp_read_uint(r, &g->random_number) ? 0 : -1;
    return wmp_skip(r) ? 0 : -1;
}

static inline int wascc_generator_result_decode(const void *data, size_t len,
                                                wascc_generator_result *g) {
    wascc_generator_result empty = {{"", 0}, 0, 0};
    *g = empty;
    return wascc_decode(data, len, g, wascc__generator_field);
}

/* ---- wascc:telnet ---------------------------------------------------------- */

/* SessionStarted {session}, ReceiveText and SendText {session, text}. */
typedef struct wascc_telnet {
    wascc_str session, text;
} wascc_telnet;

static inline int wascc__telnet_field(void *ctx, wascc_str key, wmp_reader *r) {
    wascc_telnet *t = (wascc_telnet *)ctx;
    if (wascc_str_eq(key, "session")) return wascc_read_string(r, &t->session);
    if (wascc_str_eq(key, "text")) return wascc_read_string(r, &t->text);
    return wmp_skip(r) ? 0 : -1;
}

static inline int wascc_telnet_decode(const void *data, size_t len, wascc_telnet *t) {
    wascc_telnet empty = {{"", 0}, {"", 0}};
    *t = empty;
    if (wascc_decode(data, len, t, wascc__telnet_field) != 0) return -1;
    return t->session.n ? 0 : -1;
}

static inline void wascc_telnet_write(wmp_writer *w, wascc_str session, wascc_str text) {
    wmp_write_map(w, 2);
    wascc_write_key_str(w, "session", session);
    wascc_write_key_str(w, "text", text);
}

/* ---- wascc:blobstore ------------------------------------------------------- */

/* Container {id}: CreateContainer, RemoveContainer, ListObjects. */
static inline void wascc_container_write(wmp_writer *w, wascc_str id) {
    wmp_write_map(w, 1);
    wascc_write_key_str(w, "id", id);
}

/* Blob {id, container, byteSize}: GetObjectInfo, RemoveObject, and their
 * replies.  A missing blob is answered as {id: "none", container: "none"}. */
typedef struct wascc_blob {
    wascc_str id, container;
    uint64_t byte_size;
} wascc_blob;

static inline void wascc_blob_write(wmp_writer *w, wascc_str container, wascc_str id) {
    wmp_write_map(w, 3);
    wascc_write_key_str(w, "id", id);
    wascc_write_key_str(w, "container", container);
    wmp_write_cstr(w, "byteSize");
    wmp_write_uint(w, 0);
}

static inline int wascc__blob_field(void *ctx, wascc_str key, wmp_reader *r) {
    wascc_blob *b = (wascc_blob *)ctx;
    if (wascc_str_eq(key, "id")) return wascc_read_string(r, &b->id);
    if (wascc_str_eq(key, "container")) return wascc_read_string(r, &b->container);
    if (wascc_str_eq(key, "byteSize")) return wmp_read_uint(r, &b->byte_size) ? 0 : -1;
    return wmp_skip(r) ? 0 : -1;
}

static inline int wascc__blob_read(wmp_reader *r, wascc_blob *b) {
    wascc_blob empty = {{"", 0}, {"", 0}, 0};
    *b = empty;
    return wascc_read_struct(r, b, wascc__blob_field);
}

static inline int wascc_blob_decode(const void *data, size_t len, wascc_blob *b) {
    wmp_reader r;
    wmp_reader_init(&r, data, len);
    return wascc__blob_read(&r, b);
}

/* Does a GetObjectInfo reply say "no such blob"? */
static inline int wascc_blob_is_none(const wascc_blob *b) {
    return b->id.n == 0 || (wascc_str_eq(b->id, "none") && wascc_str_eq(b->container, "none"));
}

/* BlobList {blobs: [Blob]}, the blobs left in place (every one checked when
 * decoded): read them with wascc_blob_list_at. */
typedef struct wascc_blob_list {
    const uint8_t *at;
    size_t len;
    uint32_t count;
} wascc_blob_list;

static inline int wascc__blob_list_field(void *ctx, wascc_str key, wmp_reader *r) {
    wascc_blob_list *l = (wascc_blob_list *)ctx;
    if (!wascc_str_eq(key, "blobs")) return wmp_skip(r) ? 0 : -1;
    const uint8_t *start = r->p;
    uint32_t n;
    if (!wmp_read_array(r, &n)) return -1;
    for (uint32_t i = 0; i < n; i++) {
        wascc_blob b;
        if (wascc__blob_read(r, &b) != 0) return -1;
    }
    l->at = start;
    l->len = (size_t)(r->p - start);
    l->count = n;
    return 0;
}

static inline int wascc_blob_list_decode(const void *data, size_t len, wascc_blob_list *l) {
    wascc_blob_list empty = {0, 0, 0};
    *l = empty;
    return wascc_decode(data, len, l, wascc__blob_list_field);
}

/* The i-th blob (0-based); -1 past the end. */
static inline int wascc_blob_list_at(const wascc_blob_list *l, uint32_t index, wascc_blob *b) {
    wmp_reader r;
    uint32_t n;
    if (!l->at || index >= l->count) return -1;
    wmp_reader_init(&r, l->at, l->len);
    if (!wmp_read_array(&r, &n) || index >= n) return -1;
    for (uint32_t i = 0; i <= index; i++)
        if (wascc__blob_read(&r, b) != 0) return -1;
    return 0;
}

/* FileChunk: StartUpload, UploadChunk (actor -> provider) and ReceiveChunk
 * (provider -> actor).  `bytes` points into the payload; chunkBytes is read
 * as bin or str (an array of ints, which rmp-serde also accepted, is refused
 * here: it cannot be pointed at). */
typedef struct wascc_file_chunk {
    uint64_t sequence_no, total_bytes, chunk_size;
    wascc_str container, id, context;
    const uint8_t *bytes;
    uint32_t bytes_len;
} wascc_file_chunk;

static inline int wascc__file_chunk_field(void *ctx, wascc_str key, wmp_reader *r) {
    wascc_file_chunk *c = (wascc_file_chunk *)ctx;
    if (wascc_str_eq(key, "sequenceNo")) return wmp_read_uint(r, &c->sequence_no) ? 0 : -1;
    if (wascc_str_eq(key, "totalBytes")) return wmp_read_uint(r, &c->total_bytes) ? 0 : -1;
    if (wascc_str_eq(key, "chunkSize")) return wmp_read_uint(r, &c->chunk_size) ? 0 : -1;
    if (wascc_str_eq(key, "container")) return wascc_read_string(r, &c->container);
    if (wascc_str_eq(key, "id")) return wascc_read_string(r, &c->id);
    if (wascc_str_eq(key, "context")) return wascc_read_string(r, &c->context);
    if (wascc_str_eq(key, "chunkBytes")) {
        if (wmp_peek(r) == WMP_NIL) return wmp_read_nil(r) ? 0 : -1;
        return wmp_read_bin(r, &c->bytes, &c->bytes_len) ? 0 : -1;
    }
    return wmp_skip(r) ? 0 : -1;
}

static inline int wascc_file_chunk_decode(const void *data, size_t len, wascc_file_chunk *c) {
    wascc_file_chunk empty = {0, 0, 0, {"", 0}, {"", 0}, {"", 0}, 0, 0};
    *c = empty;
    return wascc_decode(data, len, c, wascc__file_chunk_field);
}

static inline void wascc_file_chunk_write(wmp_writer *w, const wascc_file_chunk *c) {
    wmp_write_map(w, 7);
    wmp_write_cstr(w, "sequenceNo");
    wmp_write_uint(w, c->sequence_no);
    wascc_write_key_str(w, "container", c->container);
    wascc_write_key_str(w, "id", c->id);
    wmp_write_cstr(w, "totalBytes");
    wmp_write_uint(w, c->total_bytes);
    wmp_write_cstr(w, "chunkSize");
    wmp_write_uint(w, c->chunk_size);
    wascc_write_key_str(w, "context", c->context);
    wmp_write_cstr(w, "chunkBytes");
    wmp_write_bin(w, c->bytes, c->bytes_len);
}

/* StreamRequest {id, container, chunkSize (0 = the provider's default), context}. */
static inline void wascc_stream_request_write(wmp_writer *w, wascc_str container, wascc_str id,
                                              uint64_t chunk_size, wascc_str context) {
    wmp_write_map(w, 4);
    wascc_write_key_str(w, "id", id);
    wascc_write_key_str(w, "container", container);
    wmp_write_cstr(w, "chunkSize");
    wmp_write_uint(w, chunk_size);
    wascc_write_key_str(w, "context", context);
}

/* ---- wascc:graphdb ------------------------------------------------------------ */

/* QueryGraph {query, graph_name} and DeleteGraph {graph_name} (snake_case keys). */
static inline void wascc_graph_query_write(wmp_writer *w, const char *graph, wascc_str query) {
    wmp_write_map(w, 2);
    wascc_write_key_str(w, "query", query);
    wmp_write_cstr(w, "graph_name");
    wmp_write_cstr(w, graph);
}

static inline void wascc_graph_delete_write(wmp_writer *w, const char *graph) {
    wmp_write_map(w, 1);
    wmp_write_cstr(w, "graph_name");
    wmp_write_cstr(w, graph);
}

enum { WASCC_COLUMN_SCALARS = 0, WASCC_COLUMN_NODES = 1, WASCC_COLUMN_RELATIONS = 2 };
enum {
    WASCC_SCALAR_NIL = 0,
    WASCC_SCALAR_BOOL = 1,
    WASCC_SCALAR_INT = 2,
    WASCC_SCALAR_DOUBLE = 3,
    WASCC_SCALAR_STRING = 4
};

/* One graph scalar ({kind: value}).  A string is an array of its UTF-8 bytes
 * on the wire: `str` is that array left in place, read with wascc_scalar_text. */
typedef struct wascc_scalar {
    int kind;
    int boolean;
    int64_t integer;
    double dbl;
    const uint8_t *str;
    size_t str_len;
    uint32_t str_n; /* bytes in the string */
} wascc_scalar;

static inline int wascc__read_f64(wmp_reader *r, double *out) {
    if (!wmp_need(r, 1)) return 0;
    uint8_t b = *r->p;
    if (b == 0xcb) {
        if (!wmp_need(r, 9)) return 0;
        union { uint64_t u; double d; } v;
        v.u = wmp_be(r->p + 1, 8);
        *out = v.d;
        r->p += 9;
        return 1;
    }
    if (b == 0xca) {
        if (!wmp_need(r, 5)) return 0;
        union { uint32_t u; float f; } v;
        v.u = (uint32_t)wmp_be(r->p + 1, 4);
        *out = (double)v.f;
        r->p += 5;
        return 1;
    }
    int64_t i; /* an integral double written as an int */
    if (!wmp_read_int(r, &i)) return 0;
    *out = (double)i;
    return 1;
}

static inline int wascc__scalar_read(wmp_reader *r, wascc_scalar *s) {
    uint32_t n;
    int64_t kind;
    wascc_scalar empty = {0, 0, 0, 0.0, 0, 0, 0};
    *s = empty;
    if (!wmp_read_map(r, &n) || n != 1 || !wmp_read_int(r, &kind)) return -1;
    s->kind = (int)kind;
    switch (kind) {
    case WASCC_SCALAR_NIL: return wmp_read_nil(r) ? 0 : -1;
    case WASCC_SCALAR_BOOL: return wmp_read_bool(r, &s->boolean) ? 0 : -1;
    case WASCC_SCALAR_INT: return wmp_read_int(r, &s->integer) ? 0 : -1;
    case WASCC_SCALAR_DOUBLE: return wascc__read_f64(r, &s->dbl) ? 0 : -1;
    case WASCC_SCALAR_STRING: {
        const uint8_t *start = r->p;
        if (!wmp_read_array(r, &n)) return -1;
        for (uint32_t i = 0; i < n; i++) {
            int64_t byte;
            if (!wmp_read_int(r, &byte) || byte < 0 || byte > 255) return -1;
        }
        s->str = start;
        s->str_len = (size_t)(r->p - start);
        s->str_n = n;
        return 0;
    }
    default: return -1;
    }
}

/* Copies a string scalar's bytes into buf (no NUL added); its length, or -1
 * when it is not a string or does not fit in `cap`. */
static inline int64_t wascc_scalar_text(const wascc_scalar *s, uint8_t *buf, size_t cap) {
    wmp_reader r;
    uint32_t n;
    if (s->kind != WASCC_SCALAR_STRING || !s->str) return -1;
    wmp_reader_init(&r, s->str, s->str_len);
    if (!wmp_read_array(&r, &n) || n > cap) return -1;
    for (uint32_t i = 0; i < n; i++) {
        int64_t byte;
        if (!wmp_read_int(&r, &byte) || byte < 0 || byte > 255) return -1;
        buf[i] = (uint8_t)byte;
    }
    return (int64_t)n;
}

/* One column of a ResultSet ({kind: [values]}), its values left in place. */
typedef struct wascc_column {
    int kind; /* WASCC_COLUMN_* */
    const uint8_t *at;
    size_t len;
    uint32_t count;
} wascc_column;

static inline int wascc__column_read(wmp_reader *r, wascc_column *c) {
    uint32_t n;
    int64_t kind;
    if (!wmp_read_map(r, &n) || n != 1 || !wmp_read_int(r, &kind)) return -1;
    if (kind < WASCC_COLUMN_SCALARS || kind > WASCC_COLUMN_RELATIONS) return -1;
    c->kind = (int)kind;
    c->at = r->p;
    if (!wmp_read_array(r, &c->count)) return -1;
    for (uint32_t i = 0; i < c->count; i++) {
        if (kind == WASCC_COLUMN_SCALARS) {
            wascc_scalar s;
            if (wascc__scalar_read(r, &s) != 0) return -1;
        } else if (!wmp_skip(r)) {
            return -1;
        }
    }
    c->len = (size_t)(r->p - c->at);
    return 0;
}

/* ResultSet {columns, statistics}, the columns left in place (each checked). */
typedef struct wascc_result_set {
    const uint8_t *columns;
    size_t len;
    uint32_t n_columns;
} wascc_result_set;

static inline int wascc__result_set_field(void *ctx, wascc_str key, wmp_reader *r) {
    wascc_result_set *rs = (wascc_result_set *)ctx;
    if (!wascc_str_eq(key, "columns")) return wmp_skip(r) ? 0 : -1;
    const uint8_t *start = r->p;
    uint32_t n;
    if (!wmp_read_array(r, &n)) return -1;
    for (uint32_t i = 0; i < n; i++) {
        wascc_column c;
        if (wascc__column_read(r, &c) != 0) return -1;
    }
    rs->columns = start;
    rs->len = (size_t)(r->p - start);
    rs->n_columns = n;
    return 0;
}

static inline int wascc_result_set_decode(const void *data, size_t len, wascc_result_set *rs) {
    wascc_result_set empty = {0, 0, 0};
    *rs = empty;
    return wascc_decode(data, len, rs, wascc__result_set_field);
}

/* The i-th column (0-based); -1 past the end. */
static inline int wascc_result_set_column(const wascc_result_set *rs, uint32_t index,
                                          wascc_column *c) {
    wmp_reader r;
    uint32_t n;
    if (!rs->columns || index >= rs->n_columns) return -1;
    wmp_reader_init(&r, rs->columns, rs->len);
    if (!wmp_read_array(&r, &n) || index >= n) return -1;
    for (uint32_t i = 0; i <= index; i++)
        if (wascc__column_read(&r, c) != 0) return -1;
    return 0;
}

/* The i-th scalar of a scalar column (0-based); -1 past the end or for
 * node and relation columns. */
static inline int wascc_column_scalar(const wascc_column *c, uint32_t index, wascc_scalar *s) {
    wmp_reader r;
    uint32_t n;
    if (c->kind != WASCC_COLUMN_SCALARS || index >= c->count) return -1;
    wmp_reader_init(&r, c->at, c->len);
    if (!wmp_read_array(&r, &n) || index >= n) return -1;
    for (uint32_t i = 0; i <= index; i++)
        if (wascc__scalar_read(&r, s) != 0) return -1;
    return 0;
}

#endif /* WASCC_CONTRACTS_H */
