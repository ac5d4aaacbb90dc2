/*
 * mhd_hello.c - libmicrohttpd (Debian's libmicrohttpd-dev) answering the
 * floor's fixed body, for bench_http_floor.py: the library the native
 * http_server was first meant to be built on, measured doing nothing but
 * that (epoll, internal thread pool of N threads, keep-alive).
 *
 *   cc -O2 -o mhd_hello benchmarks/mhd_hello.c -lmicrohttpd
 *   ./mhd_hello PORT [THREADS]
 */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static const char BODY[] = "{\"method\":\"GET\",\"path\":\"/\",\"query_string\":\"\"}";
static struct MHD_Response *resp;
static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
    (void)cls, (void)url, (void)method, (void)version, (void)upload, (void)upload_size, (void)con_cls;
    return MHD_queue_response(c, 200, resp);
}
int main(int argc, char **argv) {
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    resp = MHD_create_response_from_buffer(sizeof BODY - 1, (void *)BODY, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)atoi(argv[1]), NULL, NULL,
        handler, NULL, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
        MHD_OPTION_CONNECTION_LIMIT, 1024u, MHD_OPTION_END);
    if (!d) return 1;
    printf("ready\n"); fflush(stdout);
    pause();
    return 0;
}
