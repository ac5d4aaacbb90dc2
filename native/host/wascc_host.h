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

/* What a call hands back: the reply or error text, owned by whoever the
 * comment at the call says. */
typedef struct wh_reply {
    uint8_t *data;
    size_t len;
} wh_reply;

/* Calls through the provider's function pointers (without the GIL).  The
 * reply in *out is the provider's: release it with wh_provider_free. */
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

/* cdef-end */
#endif
