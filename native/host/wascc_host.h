/*
 * wascc_host.h - the host side of the waPC protocol, in C.
 *
 * This is the part of the hot path that must not touch Python: the waPC
 * imports (__guest_request, __guest_response, __guest_error,
 * __host_response_len, __host_response, __host_error_len, __host_error) are
 * implemented here against wasmtime's C API, and a guest call runs from
 * wh_call() to its return without taking the GIL.  Only __host_call and
 * __console_log reach Python, through the two `extern "Python"` callbacks
 * declared at the end (see wascc/ffi.py).
 *
 * wasmtime's C API is not linked at build time: wh_init() resolves every
 * symbol with dlsym() from the libwasmtime that wasmtime-py already loaded,
 * so this module always matches the installed wasmtime-py.
 *
 * wascc/_ffi_build.py hands the part between the cdef markers to cffi's
 * parser (plain declarations only) and appends the two callbacks, which cffi
 * generates:
 *
 *   extern "Python" int wh_py_host_call(void *handle, wh_instance *inst,
 *       const unsigned char *bd, size_t bd_len, const unsigned char *ns,
 *       size_t ns_len, const unsigned char *op, size_t op_len,
 *       const unsigned char *msg, size_t msg_len);
 *   extern "Python" void wh_py_console_log(void *handle,
 *       const unsigned char *p, size_t n);
 *
 * wh_py_host_call returns 1 when the call succeeded and 0 when it failed; in
 * both cases it first hands the reply or the error text to
 * wh_set_host_result().  Neither may raise: a Python exception never
 * crosses into wasmtime.
 */
#ifndef WASCC_HOST_H
#define WASCC_HOST_H
#include <stddef.h>
#include <stdint.h>

#include "wascc/provider.h"

/* cdef-begin */

/* Status codes of wh_call() and wh_instance_new(). */
#define WH_OK 0            /* the guest answered with a response            */
#define WH_GUEST_ERROR 1   /* the guest answered with an error              */
#define WH_TRAP 2          /* the guest trapped (result holds the message)  */
#define WH_TIMEOUT 3       /* the epoch deadline passed                     */
#define WH_HOST_FAILURE 4  /* wasmtime refused the call (message in result) */

typedef struct wh_instance {
    /* Result of the last wh_call(): the guest response (WH_OK) or the
     * UTF-8 error text (every other status).  Owned by the instance,
     * valid until the next call on this instance. */
    const unsigned char *result;
    size_t result_len;
    /* Size of linear memory in bytes after the last call, and whether the
     * last call grew it. */
    uint64_t memory_size;
    int memory_grew;
    /* wasmtime trap code of the last trap, or -1. */
    int trap_code;
    /* Private to wascc_host.c. */
    void *priv;
} wh_instance;

/* Resolve the wasmtime C API from the library at `path`.  0 on success,
 * otherwise -1 and a message in err. */
int wh_init(const char *path, char *err, size_t errlen);

/* A linker that defines the waPC imports (and WASI when with_wasi != 0).
 * NULL on failure, with the message in *err (free with wh_free). */
void *wh_linker_new(void *engine, int with_wasi, char **err);
void wh_linker_delete(void *linker);

/* Pre-link a compiled module (wasmtime_module_t*) for fast instantiation. */
void *wh_pre_new(void *linker, void *module, char **err);
void wh_pre_delete(void *pre);

/* What one instance (one store) may hold when it has a memory_limit:
 * one module instance, one linear memory of at most memory_limit bytes, and
 * at most WH_MAX_TABLES tables of wh_table_elements(memory_limit) elements
 * each, so that its tables together take at most memory_limit / 2 bytes
 * (an element is counted as WH_TABLE_ELEMENT_BYTES).  Growth past a limit
 * fails (memory.grow / table.grow return -1); a module that needs more
 * from the start fails to instantiate. */
#define WH_MAX_INSTANCES 1
#define WH_MAX_MEMORIES 1
#define WH_MAX_TABLES 4
#define WH_TABLE_ELEMENT_BYTES 8
int64_t wh_table_elements(int64_t memory_limit);

/* A fresh store and instance: runs _start and wapc_init when exported, each
 * only after checking it is a function taking and returning nothing (and
 * __guest_call one of two parameters and one result): a wrong arity fails
 * with WH_HOST_FAILURE.  Exact value types are the loader's to check (from
 * the binary: wasm_valtype_kind aborts on v128 and GC types).
 * memory_limit < 0 means no cap; wasi_config (wasi_config_t*, ownership
 * taken) may be NULL.  py_handle is passed back to the Python callbacks.
 * Returns NULL on failure with the message in *err and the status (WH_TRAP,
 * WH_TIMEOUT, WH_HOST_FAILURE) in *status. */
wh_instance *wh_instance_new(void *engine, void *pre, void *py_handle,
                             int64_t memory_limit, void *wasi_config,
                             uint64_t deadline_ticks, int *status, char **err);
void wh_instance_delete(wh_instance *inst);

/* One waPC guest call.  The deadline is in epoch ticks from now. */
int wh_call(wh_instance *inst, const char *op, size_t op_len,
            const char *msg, size_t msg_len, uint64_t deadline_ticks);

/* Called by the Python __host_call callback to hand back its answer:
 * ok != 0 sets the host response, ok == 0 the host error. */
void wh_set_host_result(wh_instance *inst, int ok, const char *data, size_t len);

/* A background thread that increments the engine's epoch every
 * interval_us microseconds (one per engine; stop joins it). */
void *wh_ticker_start(void *engine, uint32_t interval_us);
void wh_ticker_stop(void *ticker);

void wh_free(char *p);

/* ---- native capability providers (native/include/wascc/provider.h) ---- */

/* Load `path` (RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE: never unloaded) and
 * call its __capability_provider_create.  NULL on failure with the reason in
 * *err and a code in *why: 1 not loadable, 2 no entry point, 3 create
 * returned NULL, 4 unknown ABI version, 5 missing function pointer. */
wascc_provider *wh_provider_open(const char *path, int *why, char **err);

/* The host's dispatcher for one provider: dispatch() calls back into Python
 * (wh_py_dispatch) with `py_handle`.  Free with wh_dispatcher_free once the
 * provider has stopped. */
wascc_dispatcher *wh_dispatcher_new(void *py_handle);
void wh_dispatcher_free(wascc_dispatcher *d);
/* Set the Python handle wh_py_dispatch receives (before configure). */
void wh_dispatcher_python(wascc_dispatcher *d, void *py_handle);

/* What a call hands back: the reply or error text, owned by whoever the
 * comment at the call says. */
typedef struct wh_reply {
    uint8_t *data;
    size_t len;
} wh_reply;

/* Calls through the provider's function pointers (without the GIL).  The
 * reply in *out is the provider's: release it with wh_provider_free (the data
 * plane does, inside the call's in-flight count: wh_native_call). */
int32_t wh_provider_configure(wascc_provider *p, wascc_dispatcher *d);
int32_t wh_provider_call(wascc_provider *p, const char *actor, const char *op,
                         const unsigned char *msg, size_t msg_len, wh_reply *out);
void wh_provider_free(wascc_provider *p, uint8_t *buf);
void wh_provider_stop(wascc_provider *p);
void wh_provider_destroy(wascc_provider *p);

/* wh_py_dispatch's answer: a host-allocated copy of data (freed by the
 * provider through the dispatcher's free_buffer).  0 on success; -1 when
 * the copy cannot be allocated, and then *reply holds an error text
 * instead (or nothing): the dispatch must fail, never succeed empty. */
int wh_reply_set(wh_reply *reply, const char *data, size_t len);

/* Sizes of the wasmtime structs this module mirrors, in this order:
 * wasmtime_func_t, wasmtime_instance_t, wasmtime_memory_t,
 * wasmtime_extern_t, wasmtime_val_raw_t, wasm_byte_vec_t.
 * The test suite compares them with wasmtime-py's ctypes bindings. */
void wh_layout(size_t out[6]);

/* ---- the data plane: pools, counters, routes (wascc_route.c) -------- */

/* More statuses of a call made through a pool. */
#define WH_BUSY 5          /* every instance stayed busy past the deadline   */
#define WH_RETIRED 6       /* the pool was retired before the call started  */
#define WH_START_FAILED 7  /* a new instance failed to start (start_status) */

/* Per-operation counters: WH_MAX_OPS names, then one "other" slot; one
 * call in WH_SAMPLE_EVERY timed into WH_NBUCKETS buckets (the bounds are
 * wascc/engine/stats.py's BUCKETS, set by wh_set_buckets; the last is +Inf). */
#define WH_MAX_OPS 64
#define WH_SAMPLE_EVERY 64
#define WH_NBUCKETS 18
typedef struct wh_stats wh_stats;
typedef struct wh_op_stats {
    const char *name;
    size_t name_len;
    uint64_t calls, timed, ns;
    uint64_t buckets[18]; /* WH_NBUCKETS */
} wh_op_stats;
void wh_set_buckets(const double *bounds, size_t n);
/* A table of its own (for calls the data plane does not run: components):
 * wh_stats_record counts one call of op and times it. */
wh_stats *wh_stats_new(void);
void wh_stats_free(wh_stats *s);
void wh_stats_record(wh_stats *s, const char *op, size_t len, double seconds);
/* Slot i (0..WH_MAX_OPS) of s: 1 and *out filled when it is in use, else 0. */
int wh_stats_get(wh_stats *s, size_t i, wh_op_stats *out);

/* Operations whose payload is a request struct (newline-separated). */
int wh_set_request_structs(const char *ops);

/* What a call through a pool hands back.  data is the reply (WH_OK) or the
 * error text; from wh_pool_call it is this thread's buffer, valid until the
 * thread's next wh_pool_call. */
typedef struct wh_result {
    const char *data;
    size_t len;
    int status;
    int start_status; /* WH_START_FAILED: how the start failed */
    int at_cap;       /* the instance ran into its memory cap */
    int trap_code;
    uint64_t memory_size;
} wh_result;

/* A pool of instances of one pre-linked module (one actor module, or one
 * portable provider).  Instances are made on demand up to max_size; a call
 * waits up to the deadline (or its budget) for one to come back.  An
 * instance that trapped, timed out or reached its memory cap is dropped.
 * Retired, it starts nothing new and wh_py_pool_empty(py_owner) runs once
 * when its last instance has closed.  Reference counted: the creator holds
 * one (wh_pool_unref), each router entry and each call in flight one. */
typedef struct wh_pool wh_pool;
wh_pool *wh_pool_new(void *engine, void *pre, void *py_host, void *py_owner,
                     int64_t memory_limit, double deadline, double tick, uint32_t max_size,
                     int wasi);
/* Start n instances now: 0, or -1 with the reason in *out (WH_START_FAILED). */
int wh_pool_fill(wh_pool *p, uint32_t n, wh_result *out);
/* budget > 0: seconds the caller still waits (the call gets the smaller of
 * it and the deadline).  Returns out->status. */
int wh_pool_call(wh_pool *p, const char *op, size_t op_len, const char *msg, size_t msg_len,
                  double budget, wh_result *out);
void wh_pool_retire(wh_pool *p);
void wh_pool_unref(wh_pool *p);
/* size, idle, waits, errors, retired, busy */
#define WH_POOL_INFO 6
void wh_pool_info(wh_pool *p, uint64_t out[6]);
wh_stats *wh_pool_stats(wh_pool *p);
/* Who the pool's actor is, for its routes: its key and the capabilities
 * and actor keys its claims list (newline-separated). */
int wh_pool_identify(wh_pool *p, const char *key, const char *caps);
/* The actor reads request struct `op` as a map: dispatch it from C. */
int wh_pool_read_map(wh_pool *p, const char *op);

/* A native provider as the data plane calls it: calls in flight are
 * counted, and wh_native_stop destroys it only once none is left.  Never
 * freed (like its library). */
#define WH_NATIVE_STOPPED 9999
typedef struct wh_native wh_native;
wh_native *wh_native_new(wascc_provider *p);
/* out->data is this thread's buffer (the provider's reply is copied and
 * released before the call stops counting), valid until its next call. */
int32_t wh_native_call(wh_native *n, const char *actor, const char *op,
                       const unsigned char *msg, size_t msg_len, wh_reply *out);
/* 1 when stopped and destroyed, 0 when calls were still running after
 * timeout seconds (then it is left undestroyed). */
int wh_native_stop(wh_native *n, double timeout);
wh_stats *wh_native_stats(wh_native *n);
int wh_native_in_flight(wh_native *n);

/* The routing tables of one host, written by the control plane. */
#define WH_CODEC_NONE 0   /* the binding says nothing: as the actor reads  */
#define WH_CODEC_MAP 1    /* WASCC_CODEC=map                               */
#define WH_CODEC_OTHER 2  /* another form: request structs go via Python  */
typedef struct wh_router wh_router;
wh_router *wh_router_new(void *py_handle);
void wh_router_free(wh_router *r);
/* python_only: a plugin applies, every call goes through Python;
 * draining: new work from providers goes through Python (which refuses). */
void wh_router_flags(wh_router *r, int python_only, int draining);
/* Publish the pool of actor (NULL: remove it). */
int wh_router_actor(wh_router *r, const char *actor, wh_pool *pool);
/* (actor, capability, binding): bound lets the provider dispatch to the
 * actor; native (only when the actor's claims list the capability) lets
 * the actor call it from C.  Neither: the entry is removed. */
int wh_router_route(wh_router *r, const char *actor, const char *capability,
                    const char *binding, int bound, wh_native *native, int codec);
void wh_pool_route(wh_pool *p, wh_router *r);
/* Route a native provider's dispatches through the tables. */
int wh_dispatcher_route(wascc_dispatcher *d, wh_router *router, const char *capability,
                        const char *binding);
void wh_dispatcher_active(wascc_dispatcher *d, int active);

/* A call the data plane ran failed: Python words it (and counts it) in
 * wh_py_failed. */
#define WH_FAIL_ACTOR 1     /* a call into an actor (owner: its pool's py_owner) */
#define WH_FAIL_PROVIDER 2  /* a native provider refused an actor's call
                               (owner: the calling pool's py_host) */
typedef struct wh_failure {
    int kind;
    int to_provider; /* the words go to a native provider: "<kind>: ..." */
    void *owner;
    const char *capability;
    size_t capability_len;
    const char *binding;
    size_t binding_len;
    const char *op;
    size_t op_len;
    const unsigned char *data;
    size_t len;
    int status;
    int start_status;
    int at_cap;
    uint64_t memory_size;
} wh_failure;

/* cdef-end */
#endif
