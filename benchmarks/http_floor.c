/*
 * http_floor.c - the native wascc:http_server with no Python at all: the
 * floor of the HTTP data plane, to compare with nginx (bench_http_floor.py).
 *
 * Loads libwascc_http_server.so, hands it a dispatcher written in C that
 * answers every HandleRequest with a fixed 200 HttpResponse (a small JSON
 * body, as the echo actor's), binds one actor on PORT and serves until
 * SIGINT/SIGTERM.  It prints "ready" once the port listens.  A request whose
 * payload holds "/slow" is answered after 50 ms (a slow actor, to exercise
 * the server's spare workers, e.g. under -fsanitize=thread).
 *
 *   cc -O2 -Inative/include -o http_floor benchmarks/http_floor.c -ldl
 *   ./http_floor native/build/libwascc_http_server.so 8089
 */
#define _GNU_SOURCE /* memmem */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wascc/msgpack.h>
#include <wascc/provider.h>

static uint8_t reply[256];
static size_t reply_len;

static void *grow(void *ctx, void *old, size_t cap) {
    (void)ctx;
    return realloc(old, cap);
}

static int32_t dispatch(void *host_data, const char *actor, const char *op, const uint8_t *msg,
                        size_t msg_len, uint8_t **out, size_t *out_len) {
    (void)host_data, (void)actor, (void)op;
    if (msg_len >= 5 && memmem(msg, msg_len, "/slow", 5)) usleep(50000);
    *out = malloc(reply_len);
    if (!*out) return WASCC_ERROR;
    memcpy(*out, reply, reply_len);
    *out_len = reply_len;
    return WASCC_OK;
}

static void free_buffer(void *host_data, uint8_t *buf) {
    (void)host_data;
    free(buf);
}

static volatile sig_atomic_t done;
static void on_signal(int sig) {
    (void)sig;
    done = 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s LIBRARY PORT\n", argv[0]);
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) {
        fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
    wascc_provider_create_fn create =
        (wascc_provider_create_fn)dlsym(lib, "__capability_provider_create");
    wascc_provider *p = create ? create() : NULL;
    if (!p) {
        fprintf(stderr, "no provider\n");
        return 1;
    }
    wmp_writer w;
    wmp_writer_init(&w, NULL, 0, grow, NULL);
    static const char body[] = "{\"method\":\"GET\",\"path\":\"/\",\"query_string\":\"\"}";
    wmp_write_map(&w, 4);
    wmp_write_cstr(&w, "statusCode");
    wmp_write_uint(&w, 200);
    wmp_write_cstr(&w, "status");
    wmp_write_cstr(&w, "OK");
    wmp_write_cstr(&w, "header");
    wmp_write_map(&w, 1);
    wmp_write_cstr(&w, "Content-Type");
    wmp_write_cstr(&w, "application/json");
    wmp_write_cstr(&w, "body");
    wmp_write_bin(&w, body, sizeof body - 1);
    memcpy(reply, w.buf, w.len);
    reply_len = w.len;
    free(w.buf);

    static wascc_dispatcher d = {WASCC_PROVIDER_ABI_VERSION, NULL, dispatch, free_buffer};
    p->configure_dispatch(p->state, &d);
    wmp_writer_init(&w, NULL, 0, grow, NULL);
    wmp_write_map(&w, 2);
    wmp_write_cstr(&w, "module");
    wmp_write_cstr(&w, "Mfloor");
    wmp_write_cstr(&w, "values");
    wmp_write_map(&w, 1);
    wmp_write_cstr(&w, "PORT");
    wmp_write_cstr(&w, argv[2]);
    uint8_t *out = NULL;
    size_t out_len = 0;
    int32_t rc = p->handle_call(p->state, "system", "BindActor", w.buf, w.len, &out, &out_len);
    free(w.buf);
    if (rc != WASCC_OK) {
        fprintf(stderr, "BindActor: %.*s\n", (int)out_len, out ? (char *)out : "");
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("ready\n");
    fflush(stdout);
    while (!done) pause();
    p->stop(p->state);
    p->destroy(p->state);
    return 0;
}
