/*
 * kvredis.h - the Redis backend of the native wascc:keyvalue provider: a
 * binding's URL parsed, a small pool of hiredis connections, and one handler
 * per operation (kvredis.c).  keyvalue.c owns the bindings and picks this
 * backend for an actor whose binding has a URL.
 *
 * A kv_redis is reference counted: the binding holds one reference, each
 * call in flight another (kvr_ref / kvr_unref), so a re-bind or RemoveActor
 * can drop a pool while calls on it finish; the last reference frees it.
 */
#ifndef WASCC_KVREDIS_H
#define WASCC_KVREDIS_H

#include <stddef.h>
#include <stdint.h>

#include "kvops.h"

typedef struct kv_redis kv_redis;

/* A pooled connection lent to one call (see kvr_run). */
typedef struct kv_redis_conn kv_redis_conn;

#define KVR_DEFAULT_POOL_SIZE 4
#define KVR_MAX_POOL_SIZE 256
#define KVR_DEFAULT_TIMEOUT_MS 5000
#define KVR_MAX_TIMEOUT_MS 600000

/* Parses the binding's values (pool_size and timeout_ms may be NULL: the
 * defaults), opens one connection and checks it with PING.  On failure
 * returns NULL and sets *err to a malloc'd message naming the value and the
 * reason (the password never appears in it).  The result holds one
 * reference. */
KV_INTERNAL kv_redis *kvr_open(const char *url, const char *pool_size, const char *timeout_ms,
                               char **err);
KV_INTERNAL void kvr_ref(kv_redis *r);
KV_INTERNAL void kvr_unref(kv_redis *r);

/* Runs one operation on a pooled connection: waits at most TIMEOUT_MS for a
 * free one, (re)connects it if needed, and drops it if the call breaks it, so
 * the next call connects afresh. */
KV_INTERNAL int32_t kvr_run(kv_redis *r, const kv_op *op, const kv_request *req, uint8_t **out,
                            size_t *out_len);

/* The handlers of kv_ops[] for this backend. */
KV_INTERNAL int32_t kvr_get(kv_redis_conn *c, const kv_op *op, const kv_request *r, uint8_t **out,
                            size_t *out_len);
KV_INTERNAL int32_t kvr_set(kv_redis_conn *c, const kv_op *op, const kv_request *r, uint8_t **out,
                            size_t *out_len);
KV_INTERNAL int32_t kvr_del(kv_redis_conn *c, const kv_op *op, const kv_request *r, uint8_t **out,
                            size_t *out_len);
KV_INTERNAL int32_t kvr_add(kv_redis_conn *c, const kv_op *op, const kv_request *r, uint8_t **out,
                            size_t *out_len);
KV_INTERNAL int32_t kvr_push(kv_redis_conn *c, const kv_op *op, const kv_request *r,
                             uint8_t **out, size_t *out_len);
KV_INTERNAL int32_t kvr_list_item_delete(kv_redis_conn *c, const kv_op *op, const kv_request *r,
                                         uint8_t **out, size_t *out_len);
KV_INTERNAL int32_t kvr_range(kv_redis_conn *c, const kv_op *op, const kv_request *r,
                              uint8_t **out, size_t *out_len);
KV_INTERNAL int32_t kvr_set_add(kv_redis_conn *c, const kv_op *op, const kv_request *r,
                                uint8_t **out, size_t *out_len);
KV_INTERNAL int32_t kvr_set_remove(kv_redis_conn *c, const kv_op *op, const kv_request *r,
                                   uint8_t **out, size_t *out_len);
KV_INTERNAL int32_t kvr_set_union(kv_redis_conn *c, const kv_op *op, const kv_request *r,
                                  uint8_t **out, size_t *out_len);
KV_INTERNAL int32_t kvr_set_intersection(kv_redis_conn *c, const kv_op *op, const kv_request *r,
                                         uint8_t **out, size_t *out_len);
KV_INTERNAL int32_t kvr_set_query(kv_redis_conn *c, const kv_op *op, const kv_request *r,
                                  uint8_t **out, size_t *out_len);
KV_INTERNAL int32_t kvr_key_exists(kv_redis_conn *c, const kv_op *op, const kv_request *r,
                                   uint8_t **out, size_t *out_len);

#endif /* WASCC_KVREDIS_H */
