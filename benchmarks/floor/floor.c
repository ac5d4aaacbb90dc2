/*
 * floor.c - the floor of wascc's data plane: a waPC actor driven from C, no Python.
 *
 *   floor LIBWASMTIME MODULE [CALLS [REPEATS]]
 *
 * Loads the libwasmtime that wasmtime-py ships (LIBWASMTIME), compiles MODULE
 * (benchmarks/echo_actor.wat, or its .wasm) and times, in nanoseconds per call
 * (the best of REPEATS repetitions of CALLS calls each, after a warm-up):
 *
 *   floor    a minimal waPC host: the imports defined with
 *            wasmtime_linker_define_func_unchecked, the guest run with
 *            wasmtime_func_call_unchecked; each import checks its pointers
 *            against linear memory and copies what waPC says it copies (the
 *            request in, the response out to a host buffer).  Op "Echo" at
 *            16 B, 1 KiB and 64 KiB, and "HostEcho" at 16 B: one __host_call
 *            answered by a C function that echoes the payload (the floor of
 *            actor -> provider -> actor).
 *   wascc-c  the same calls through wascc's own C host (native/host/
 *            wascc_host.c: wh_call), with its __host_call answered in C
 *            instead of Python: what wascc's per-call work costs when no
 *            Python runs.
 *
 * Every call is checked (the answer must equal the payload) before it is
 * timed.  Output, one line per figure:   PEER OPERATION BYTES NS_PER_CALL
 *
 * wascc_host.c is included whole, as wascc's cffi module includes it: its
 * mirror of the wasmtime C API types, its dlsym resolution (wh_init) and its
 * waPC host are shared, not copied.  Its callbacks into Python are defined
 * below in C.  Built by benchmarks/bench_dataplane.py:
 *
 *   gcc -O2 -std=gnu11 -Inative/host -Inative/include -o floor \
 *       benchmarks/floor/floor.c -ldl -lpthread
 */
#include "wascc_host.c"

#include <errno.h>

/* ---- wascc_host.c's callbacks, answered in C ---------------------------- */

/* __host_call: echo the payload, as the Python benches' provider does. */
static int wh_py_host_call(void *handle, wh_instance *inst, const unsigned char *bd,
                           size_t bd_len, const unsigned char *ns, size_t ns_len,
                           const unsigned char *op, size_t op_len, const unsigned char *msg,
                           size_t msg_len) {
    (void)handle; (void)bd; (void)bd_len; (void)ns; (void)ns_len; (void)op; (void)op_len;
    wh_set_host_result(inst, 1, (const char *)msg, msg_len);
    return 1;
}

static void wh_py_console_log(void *handle, const unsigned char *p, size_t n) {
    (void)handle;
    fprintf(stderr, "actor: %.*s\n", (int)n, (const char *)p);
}

static int wh_py_dispatch(void *handle, wh_reply *reply, const char *actor, const char *op,
                          const unsigned char *msg, size_t msg_len) {
    (void)handle; (void)actor; (void)op; (void)msg; (void)msg_len;
    wh_reply_set(reply, "no providers here", 17);
    return 0;
}

/* The data plane's callbacks (wascc_route.c): no pool here is retired,
 * none needs WASI, and the floor has no routes to fail. */
static void wh_py_pool_empty(void *owner) { (void)owner; }
static void *wh_py_wasi_config(void *owner) {
    (void)owner;
    return NULL;
}
static void wh_py_failed(void *router, wh_failure *f, wh_reply *words) {
    (void)router; (void)f;
    wh_reply_set(words, "failed", 6);
}

/* ---- the few wasmtime functions wascc_host.c does not use --------------- */

typedef struct wasm_config_t wasm_config_t;
static wasm_engine_t *(*p_wasm_engine_new)(void);
static wasmtime_error_t *(*p_wasmtime_module_new)(wasm_engine_t *, const uint8_t *, size_t,
                                                  wasmtime_module_t **);
static void (*p_wasmtime_module_delete)(wasmtime_module_t *);
static wasmtime_error_t *(*p_wasmtime_wat2wasm)(const char *, size_t, wasm_byte_vec_t *);
static wasmtime_error_t *(*p_wasmtime_linker_instantiate)(const wasmtime_linker_t *,
                                                          wasmtime_context_t *,
                                                          const wasmtime_module_t *,
                                                          wasmtime_instance_t *, wasm_trap_t **);

static void die(const char *what, const char *why) {
    fprintf(stderr, "floor: %s: %s\n", what, why);
    exit(1);
}

static void check(wasmtime_error_t *e, wasm_trap_t *trap, const char *what) {
    if (e) die(what, take_error(e));
    if (trap) {
        int code;
        die(what, take_trap(trap, &code));
    }
}

static void *resolve(void *lib, const char *name) {
    void *sym = dlsym(lib, name);
    if (!sym) die(name, "not found in libwasmtime");
    return sym;
}

static void bind_extra(const char *path) {
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL); /* the handle wh_init opened */
    if (!lib) die(path, dlerror());
    *(void **)&p_wasm_engine_new = resolve(lib, "wasm_engine_new");
    *(void **)&p_wasmtime_module_new = resolve(lib, "wasmtime_module_new");
    *(void **)&p_wasmtime_module_delete = resolve(lib, "wasmtime_module_delete");
    *(void **)&p_wasmtime_wat2wasm = resolve(lib, "wasmtime_wat2wasm");
    *(void **)&p_wasmtime_linker_instantiate = resolve(lib, "wasmtime_linker_instantiate");
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *data = malloc(cap);
    size_t got;
    while (data && (got = fread(data + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) data = realloc(data, cap *= 2);
    }
    fclose(f);
    if (!data) die(path, "out of memory");
    *len = n;
    return data;
}

static wasmtime_module_t *compile(wasm_engine_t *engine, const char *path) {
    size_t len;
    char *text = read_file(path, &len);
    wasm_byte_vec_t wasm = {len, text};
    int from_wat = len < 4 || memcmp(text, "\0asm", 4) != 0;
    if (from_wat) check(p_wasmtime_wat2wasm(text, len, &wasm), NULL, path);
    wasmtime_module_t *module = NULL;
    check(p_wasmtime_module_new(engine, (const uint8_t *)wasm.data, wasm.size, &module), NULL,
          path);
    if (from_wat) p_wasm_byte_vec_delete(&wasm);
    free(text);
    return module;
}

/* ---- the minimal waPC host ---------------------------------------------- */

typedef struct {
    uint8_t *data;
    size_t len, cap;
} bytes_t;

static int bytes_set(bytes_t *b, const uint8_t *src, size_t len) {
    if (len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < len) cap *= 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d) return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data, src, len);
    b->len = len;
    return 0;
}

typedef struct {
    wasmtime_store_t *store;
    wasmtime_context_t *ctx;
    wasmtime_memory_t memory;
    wasmtime_func_t guest_call;
    const uint8_t *op, *msg;
    size_t op_len, msg_len;
    bytes_t response, error, host_response;
    int has_response, has_error;
} mini_t;

/* Linear memory and its size; NULL (a trap) if [ptr, ptr+len) is outside it. */
static uint8_t *span(mini_t *m, uint32_t ptr, size_t len) {
    size_t size = p_wasmtime_memory_data_size(m->ctx, &m->memory);
    if (!in_bounds(ptr, len, size)) return NULL;
    return p_wasmtime_memory_data(m->ctx, &m->memory) + ptr;
}

#define MINI(env) ((mini_t *)(env))
#define OOB(name) trap_msg(name ": pointer out of bounds of linear memory")

static wasm_trap_t *mini_guest_request(void *env, wasmtime_caller_t *c, wasmtime_val_raw_t *args,
                                       size_t n) {
    (void)c; (void)n;
    mini_t *m = MINI(env);
    uint8_t *op = span(m, ARG(0), m->op_len), *msg = span(m, ARG(1), m->msg_len);
    if (!op || !msg) return OOB("__guest_request");
    memcpy(op, m->op, m->op_len);
    memcpy(msg, m->msg, m->msg_len);
    return NULL;
}

static wasm_trap_t *mini_guest_response(void *env, wasmtime_caller_t *c,
                                        wasmtime_val_raw_t *args, size_t n) {
    (void)c; (void)n;
    mini_t *m = MINI(env);
    uint8_t *p = span(m, ARG(0), ARG(1));
    if (!p) return OOB("__guest_response");
    if (bytes_set(&m->response, p, ARG(1))) return trap_msg("host out of memory");
    m->has_response = 1;
    return NULL;
}

static wasm_trap_t *mini_guest_error(void *env, wasmtime_caller_t *c, wasmtime_val_raw_t *args,
                                     size_t n) {
    (void)c; (void)n;
    mini_t *m = MINI(env);
    uint8_t *p = span(m, ARG(0), ARG(1));
    if (!p) return OOB("__guest_error");
    if (bytes_set(&m->error, p, ARG(1))) return trap_msg("host out of memory");
    m->has_error = 1;
    return NULL;
}

/* The "provider": a C function that echoes the payload. */
static wasm_trap_t *mini_host_call(void *env, wasmtime_caller_t *c, wasmtime_val_raw_t *args,
                                   size_t n) {
    (void)c; (void)n;
    mini_t *m = MINI(env);
    for (int i = 0; i < 6; i += 2)
        if (!span(m, ARG(i), ARG(i + 1))) return OOB("__host_call");
    uint8_t *msg = span(m, ARG(6), ARG(7));
    if (!msg) return OOB("__host_call");
    int ok = bytes_set(&m->host_response, msg, ARG(7)) == 0;
    args[0].i64 = 0;
    args[0].i32 = ok;
    return NULL;
}

static wasm_trap_t *mini_host_response_len(void *env, wasmtime_caller_t *c,
                                           wasmtime_val_raw_t *args, size_t n) {
    (void)c; (void)n;
    args[0].i64 = 0;
    args[0].i32 = (int32_t)MINI(env)->host_response.len;
    return NULL;
}

static wasm_trap_t *mini_host_response(void *env, wasmtime_caller_t *c, wasmtime_val_raw_t *args,
                                       size_t n) {
    (void)c; (void)n;
    mini_t *m = MINI(env);
    uint8_t *p = span(m, ARG(0), m->host_response.len);
    if (!p) return OOB("__host_response");
    memcpy(p, m->host_response.data, m->host_response.len);
    return NULL;
}

static wasm_trap_t *mini_host_error_len(void *env, wasmtime_caller_t *c, wasmtime_val_raw_t *args,
                                        size_t n) {
    (void)env; (void)c; (void)n;
    args[0].i64 = 0;
    args[0].i32 = 0; /* the echo never fails */
    return NULL;
}

static wasm_trap_t *mini_nothing(void *env, wasmtime_caller_t *c, wasmtime_val_raw_t *args,
                                 size_t n) {
    (void)env; (void)c; (void)args; (void)n;
    return NULL;
}

static const struct {
    const char *name;
    size_t nparams, nresults;
    wasmtime_func_unchecked_callback_t cb;
} MINI_IMPORTS[] = {
    {"__guest_request", 2, 0, mini_guest_request},
    {"__guest_response", 2, 0, mini_guest_response},
    {"__guest_error", 2, 0, mini_guest_error},
    {"__host_call", 8, 1, mini_host_call},
    {"__host_response_len", 0, 1, mini_host_response_len},
    {"__host_response", 1, 0, mini_host_response},
    {"__host_error_len", 0, 1, mini_host_error_len},
    {"__host_error", 1, 0, mini_nothing},
    {"__console_log", 2, 0, mini_nothing},
};

static mini_t *mini_new(wasm_engine_t *engine, wasmtime_module_t *module) {
    mini_t *m = calloc(1, sizeof *m);
    if (!m) die("floor", "out of memory");
    m->store = p_wasmtime_store_new(engine, NULL, NULL);
    m->ctx = p_wasmtime_store_context(m->store);
    wasmtime_linker_t *linker = p_wasmtime_linker_new(engine);
    for (size_t i = 0; i < sizeof MINI_IMPORTS / sizeof MINI_IMPORTS[0]; i++) {
        wasm_functype_t *ty = functype_i32(MINI_IMPORTS[i].nparams, MINI_IMPORTS[i].nresults);
        check(p_wasmtime_linker_define_func_unchecked(
                  linker, "wapc", 4, MINI_IMPORTS[i].name, strlen(MINI_IMPORTS[i].name), ty,
                  MINI_IMPORTS[i].cb, m, NULL),
              NULL, MINI_IMPORTS[i].name);
        p_wasm_functype_delete(ty);
    }
    wasmtime_instance_t instance;
    wasm_trap_t *trap = NULL;
    check(p_wasmtime_linker_instantiate(linker, m->ctx, module, &instance, &trap), trap,
          "instantiate");
    p_wasmtime_linker_delete(linker);
    wasmtime_extern_t item;
    if (!p_wasmtime_instance_export_get(m->ctx, &instance, "memory", 6, &item) ||
        item.kind != EXTERN_MEMORY)
        die("instantiate", "the module exports no memory");
    m->memory = item.of.memory;
    if (!p_wasmtime_instance_export_get(m->ctx, &instance, "__guest_call", 12, &item) ||
        item.kind != EXTERN_FUNC)
        die("instantiate", "the module exports no __guest_call");
    m->guest_call = item.of.func;
    state_t probe = {.ctx = m->ctx}; /* an unchecked call of the wrong arity aborts */
    if (!func_arity_is(&probe, &m->guest_call, 2, 1))
        die("instantiate", "the module exports __guest_call with a type other than "
                           "(i32, i32) -> i32");
    return m;
}

/* One waPC call: 0 with the response in m->response, or -1. */
static int mini_call(mini_t *m, const char *op, const uint8_t *msg, size_t len) {
    m->op = (const uint8_t *)op;
    m->op_len = strlen(op);
    m->msg = msg;
    m->msg_len = len;
    m->has_response = m->has_error = 0;
    m->host_response.len = 0;
    wasmtime_val_raw_t args[2];
    args[0].i64 = args[1].i64 = 0;
    args[0].i32 = (int32_t)m->op_len;
    args[1].i32 = (int32_t)len;
    wasm_trap_t *trap = NULL;
    wasmtime_error_t *e = p_wasmtime_func_call_unchecked(m->ctx, &m->guest_call, args, 2, &trap);
    if (e || trap) {
        check(e, trap, op);
        return -1;
    }
    return args[0].i32 == 1 && m->has_response ? 0 : -1;
}

/* ---- timing ------------------------------------------------------------- */

typedef struct {
    const char *op;
    size_t size;
} row_t;

static const row_t ROWS[] = {
    {"Echo", 16}, {"Echo", 1024}, {"Echo", 65536}, {"HostEcho", 16},
};

static double floor_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int call_mini(void *peer, const char *op, const uint8_t *msg, size_t len,
                     const uint8_t **out, size_t *out_len) {
    mini_t *m = peer;
    int rc = mini_call(m, op, msg, len);
    *out = m->response.data;
    *out_len = m->response.len;
    return rc;
}

static int call_wascc(void *peer, const char *op, const uint8_t *msg, size_t len,
                      const uint8_t **out, size_t *out_len) {
    wh_instance *inst = peer;
    int rc = wh_call(inst, op, strlen(op), (const char *)msg, len, UINT64_MAX / 2);
    *out = inst->result;
    *out_len = inst->result_len;
    return rc == WH_OK ? 0 : -1;
}

typedef int (*call_fn)(void *, const char *, const uint8_t *, size_t, const uint8_t **,
                       size_t *);

static double best_ns(call_fn call, void *peer, const row_t *row, const uint8_t *payload,
                      long calls, int repeats) {
    const uint8_t *out;
    size_t out_len;
    if (call(peer, row->op, payload, row->size, &out, &out_len) != 0 || out_len != row->size ||
        memcmp(out, payload, row->size) != 0) {
        fprintf(stderr, "floor: %s of %zu bytes did not echo its payload\n", row->op, row->size);
        exit(1);
    }
    for (long i = 0; i < calls / 10 + 1; i++) call(peer, row->op, payload, row->size, &out, &out_len);
    double best = 1e300;
    for (int r = 0; r < repeats; r++) {
        double start = floor_now_ns();
        for (long i = 0; i < calls; i++) call(peer, row->op, payload, row->size, &out, &out_len);
        double per = (floor_now_ns() - start) / (double)calls;
        if (per < best) best = per;
    }
    return best;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: floor LIBWASMTIME MODULE [CALLS [REPEATS]]\n");
        return 2;
    }
    long calls = argc > 3 ? atol(argv[3]) : 200000;
    int repeats = argc > 4 ? atoi(argv[4]) : 5;
    if (calls < 1 || repeats < 1) die("arguments", "CALLS and REPEATS must be positive");
    char err[1024];
    if (wh_init(argv[1], err, sizeof err) != 0) die("wh_init", err);
    bind_extra(argv[1]);
    wasm_engine_t *engine = p_wasm_engine_new();
    wasmtime_module_t *module = compile(engine, argv[2]);

    mini_t *mini = mini_new(engine, module);
    char *msg = NULL;
    void *linker = wh_linker_new(engine, 0, &msg);
    if (!linker) die("wh_linker_new", msg);
    void *pre = wh_pre_new(linker, module, &msg);
    if (!pre) die("wh_pre_new", msg);
    int status;
    wh_instance *inst = wh_instance_new(engine, pre, NULL, -1, NULL, UINT64_MAX / 2, &status, &msg);
    if (!inst) die("wh_instance_new", msg);

    size_t most = 0;
    for (size_t i = 0; i < sizeof ROWS / sizeof ROWS[0]; i++)
        if (ROWS[i].size > most) most = ROWS[i].size;
    uint8_t *payload = malloc(most);
    for (size_t i = 0; i < most; i++) payload[i] = (uint8_t)i;

    for (size_t i = 0; i < sizeof ROWS / sizeof ROWS[0]; i++) {
        const row_t *row = &ROWS[i];
        long n = row->size > 4096 ? calls / 20 + 1 : calls;
        double a = best_ns(call_mini, mini, row, payload, n, repeats);
        double b = best_ns(call_wascc, inst, row, payload, n, repeats);
        printf("floor %s %zu %.1f\n", row->op, row->size, a);
        printf("wascc-c %s %zu %.1f\n", row->op, row->size, b);
        fflush(stdout);
    }
    wh_instance_delete(inst);
    wh_pre_delete(pre);
    wh_linker_delete(linker);
    p_wasmtime_store_delete(mini->store);
    p_wasmtime_module_delete(module);
    p_wasm_engine_delete(engine);
    return 0;
}
