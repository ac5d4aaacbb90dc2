/*
 * kvops.h - what the two backends of the native wascc:keyvalue provider
 * share: the parsed request, the operation table's entry and the reply and
 * error helpers, so that both answer with the same bytes and the same
 * messages (keyvalue.c implements these; kvredis.c uses them).
 */
#ifndef WASCC_KVOPS_H
#define WASCC_KVOPS_H

#include <stddef.h>
#include <stdint.h>

#include <wascc/msgpack.h>

#include "kvstore.h"

#define KV_CAPABILITY "wascc:keyvalue"

/* Request fields, as bits of kv_op.required / .optional and kv_request.seen. */
enum {
    F_KEY = 1u << 0,
    F_VALUE = 1u << 1,  /* `value` as a string */
    F_IVALUE = 1u << 2, /* `value` as an i32 (Add) */
    F_EXPIRES = 1u << 3,
    F_START = 1u << 4,
    F_STOP = 1u << 5,
    F_KEYS = 1u << 6,
};

typedef struct {
    unsigned seen;
    const char *key;
    uint32_t key_len;
    const char *value;
    uint32_t value_len;
    int64_t ivalue, expires, start, stop;
    wmp_reader keys; /* positioned at the first element of `keys` */
    uint32_t n_keys;
} kv_request;

struct kv_provider;
struct kv_redis_conn;
typedef struct kv_op kv_op;

/* The in-memory handler runs with the store locked; the Redis one with a
 * pooled connection held.  Both answer as handle_call does. */
typedef int32_t (*kv_mem_handler)(struct kv_provider *p, const kv_op *op, const kv_request *r,
                                  int64_t now, uint8_t **out, size_t *out_len);
typedef int32_t (*kv_redis_handler)(struct kv_redis_conn *c, const kv_op *op, const kv_request *r,
                                    uint8_t **out, size_t *out_len);

struct kv_op {
    const char *name;
    kv_mem_handler mem;
    kv_redis_handler redis;
    unsigned required, optional;
    const char *doctext;
};

/* Replies (WASCC_OK with a provider-allocated buffer). */
KV_INTERNAL int32_t kv_reply_value_exists(const char *value, size_t len, int exists,
                                          uint8_t **out, size_t *out_len);
KV_INTERNAL int32_t kv_reply_one_str(const char *field, const char *s, size_t len, uint8_t **out,
                                     size_t *out_len);
KV_INTERNAL int32_t kv_reply_one_int(const char *field, int64_t v, uint8_t **out,
                                     size_t *out_len);

/* Errors (WASCC_ERROR with the message); type names are "string", "list",
 * "set" or whatever else Redis calls a type ("hash", "zset", "stream"). */
KV_INTERNAL int32_t kv_wrong_type(const kv_op *op, const char *key, size_t klen, const char *held,
                                  const char *wanted, uint8_t **out, size_t *out_len);
KV_INTERNAL int32_t kv_not_an_integer(const kv_op *op, const char *key, size_t klen,
                                      uint8_t **out, size_t *out_len);
KV_INTERNAL int32_t kv_add_overflow(const kv_op *op, const char *base, int64_t add,
                                    const char *key, size_t klen, uint8_t **out,
                                    size_t *out_len);

#endif /* WASCC_KVOPS_H */
