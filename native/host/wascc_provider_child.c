/*
 * wascc-provider-child - the child process of an isolated native provider, in C.
 *
 * The same program as wascc/providers/_child.py (which documents the design and
 * is the fallback when this one was not built), without Python in the call path:
 *
 *   wascc-provider-child --fd=N --library=PATH [--address-space=B]
 *                        [--cpu-seconds=S] [--open-files=N]
 *
 * It sets the resource limits, dlopens the provider with the checks of
 * wh_provider_open (native/host/wascc_host.c), hands it a dispatcher that
 * forwards every dispatch to the host, says READY, and serves the host's calls
 * leader/follower: the thread holding the read lock reads one frame, hands the
 * lock on and serves that frame itself.  A new thread is started when the last
 * idle one takes a call, so a blocked call never stops the next frame from
 * being read.  End of stream (the host is gone) or STOP ends the process.
 *
 * Frames (wascc/providers/_ipc.py): u32 length of the rest | u8 kind | u64 id |
 * u8 ok | u16 len(actor) | u16 len(op) | actor | op | payload, big-endian.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wascc/provider.h"

enum { CALL = 1, REPLY = 2, DISPATCH = 3, DISPATCH_REPLY = 4, READY = 5, STOP = 6 };
#define HEADER 18
#define MAX_FRAME (64u << 20)
#define MAX_THREADS 256

typedef struct {
    uint8_t kind, ok;
    uint64_t id;
    char *actor, *op; /* NUL-terminated copies */
    uint8_t *payload;
    size_t len;
    uint8_t *buf; /* owns actor, op and payload */
} frame_t;

typedef struct pending {
    uint64_t id;
    int done, ok;
    uint8_t *data;
    size_t len;
    pthread_cond_t cond;
    struct pending *next;
} pending_t;

static int fd = -1;
static wascc_provider *provider;
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t read_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static pending_t *pendings;
static uint64_t next_dispatch;
static int threads, idle;

static int read_all(uint8_t *p, size_t n) {
    while (n) {
        ssize_t k = read(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void send_frame(int kind, uint64_t id, int ok, const char *actor, const char *op,
                       const uint8_t *payload, size_t len) {
    size_t alen = strlen(actor), olen = strlen(op);
    size_t rest = HEADER - 4 + alen + olen + len;
    if (rest > MAX_FRAME) { /* an answer too large: say so instead */
        static const char msg[] = "the reply is over the 64 MiB frame limit";
        send_frame(kind, id, 0, "", "", (const uint8_t *)msg, sizeof msg - 1);
        return;
    }
    uint8_t h[HEADER];
    h[0] = (uint8_t)(rest >> 24), h[1] = (uint8_t)(rest >> 16), h[2] = (uint8_t)(rest >> 8);
    h[3] = (uint8_t)rest, h[4] = (uint8_t)kind;
    for (int i = 0; i < 8; i++) h[5 + i] = (uint8_t)(id >> (56 - 8 * i));
    h[13] = (uint8_t)(ok ? 1 : 0);
    h[14] = (uint8_t)(alen >> 8), h[15] = (uint8_t)alen, h[16] = (uint8_t)(olen >> 8);
    h[17] = (uint8_t)olen;
    struct iovec parts[4] = {{h, HEADER}, {(void *)actor, alen}, {(void *)op, olen},
                             {(void *)payload, len}};
    struct msghdr m = {0};
    pthread_mutex_lock(&write_lock);
    size_t left = HEADER + alen + olen + len;
    struct iovec *iov = parts;
    int n = 4;
    while (left) {
        m.msg_iov = iov;
        m.msg_iovlen = (size_t)n;
        ssize_t k = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break; /* the host is gone: the reader sees it and exits */
        left -= (size_t)k;
        while (n && (size_t)k >= iov->iov_len) k -= (ssize_t)iov->iov_len, iov++, n--;
        if (n) iov->iov_base = (uint8_t *)iov->iov_base + k, iov->iov_len -= (size_t)k;
    }
    pthread_mutex_unlock(&write_lock);
}

/* One frame; 0 at a clean or broken end of stream (the child then exits). */
static int read_frame(frame_t *f) {
    uint8_t h[HEADER];
    if (read_all(h, HEADER) != 0) return 0;
    uint32_t rest = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    f->kind = h[4];
    f->id = 0;
    for (int i = 0; i < 8; i++) f->id = f->id << 8 | h[5 + i];
    f->ok = h[13];
    size_t alen = (size_t)h[14] << 8 | h[15], olen = (size_t)h[16] << 8 | h[17];
    if (rest > MAX_FRAME || rest < HEADER - 4 + alen + olen) return 0;
    size_t body = rest - (HEADER - 4);
    f->buf = malloc(body + 2);
    if (!f->buf || read_all(f->buf, body) != 0) return 0;
    /* actor and op become C strings: shift the payload right by two bytes */
    memmove(f->buf + alen + olen + 2, f->buf + alen + olen, body - alen - olen);
    memmove(f->buf + alen + 1, f->buf + alen, olen);
    f->buf[alen] = 0;
    f->buf[alen + 1 + olen] = 0;
    f->actor = (char *)f->buf;
    f->op = (char *)f->buf + alen + 1;
    f->payload = f->buf + alen + olen + 2;
    f->len = body - alen - olen;
    return 1;
}

static int32_t dispatch(void *host_data, const char *actor, const char *op, const uint8_t *msg,
                        size_t msg_len, uint8_t **out, size_t *out_len) {
    (void)host_data;
    pending_t p = {0};
    pthread_cond_init(&p.cond, NULL);
    pthread_mutex_lock(&state_lock);
    p.id = ++next_dispatch;
    p.next = pendings;
    pendings = &p;
    pthread_mutex_unlock(&state_lock);
    send_frame(DISPATCH, p.id, 1, actor ? actor : "", op ? op : "", msg, msg ? msg_len : 0);
    pthread_mutex_lock(&state_lock);
    while (!p.done) pthread_cond_wait(&p.cond, &state_lock);
    pthread_mutex_unlock(&state_lock);
    pthread_cond_destroy(&p.cond);
    if (out) *out = p.data;
    else free(p.data);
    if (out_len) *out_len = p.len;
    return p.ok ? WASCC_OK : WASCC_ERROR;
}

static void dispatch_free(void *host_data, uint8_t *buf) {
    (void)host_data;
    free(buf);
}

static wascc_dispatcher dispatcher = {WASCC_PROVIDER_ABI_VERSION, NULL, dispatch, dispatch_free};

static void answered(frame_t *f) {
    pthread_mutex_lock(&state_lock);
    for (pending_t **pp = &pendings; *pp; pp = &(*pp)->next) {
        pending_t *p = *pp;
        if (p->id != f->id) continue;
        *pp = p->next;
        p->ok = f->ok;
        p->len = f->len;
        p->data = f->len ? malloc(f->len) : NULL;
        if (p->data) memcpy(p->data, f->payload, f->len);
        else p->len = 0;
        p->done = 1;
        pthread_cond_signal(&p->cond);
        break;
    }
    pthread_mutex_unlock(&state_lock);
}

static void *worker(void *arg);

static void start_worker(void) {
    pthread_mutex_lock(&state_lock);
    if (threads >= MAX_THREADS) { /* every thread busy: frames wait (the host's deadline runs) */
        pthread_mutex_unlock(&state_lock);
        return;
    }
    threads++;
    idle++;
    pthread_mutex_unlock(&state_lock);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, worker, NULL) != 0) {
        pthread_mutex_lock(&state_lock);
        threads--, idle--;
        pthread_mutex_unlock(&state_lock);
    }
    pthread_attr_destroy(&attr);
}

static void serve(frame_t *f) {
    uint8_t *out = NULL;
    size_t out_len = 0;
    int32_t rc = provider->handle_call(provider->state, f->actor, f->op, f->payload, f->len,
                                       &out, &out_len);
    send_frame(REPLY, f->id, rc == WASCC_OK, "", "", out, out ? out_len : 0);
    if (out) provider->free_buffer(provider->state, out);
}

static void *worker(void *arg) {
    (void)arg;
    for (;;) {
        frame_t f = {0};
        pthread_mutex_lock(&read_lock);
        int got = read_frame(&f);
        pthread_mutex_unlock(&read_lock);
        if (!got) _exit(0); /* the host is gone (or broke the format): never outlive it */
        if (f.kind == DISPATCH_REPLY) {
            answered(&f);
        } else if (f.kind == STOP) {
            /* stop, let calls in flight finish (up to the seconds the host gave), destroy */
            char text[32] = {0};
            memcpy(text, f.payload, f.len < sizeof text - 1 ? f.len : sizeof text - 1);
            double grace = atof(text) > 0 ? atof(text) : 10.0;
            provider->stop(provider->state);
            int busy = 1;
            for (double waited = 0; waited < grace; waited += 0.001) {
                pthread_mutex_lock(&state_lock);
                busy = threads - idle;
                pthread_mutex_unlock(&state_lock);
                if (!busy) break;
                usleep(1000);
            }
            if (!busy) provider->destroy(provider->state);
            _exit(0);
        } else if (f.kind == CALL) {
            pthread_mutex_lock(&state_lock);
            int last = --idle == 0;
            pthread_mutex_unlock(&state_lock);
            if (last) start_worker();
            serve(&f);
            pthread_mutex_lock(&state_lock);
            idle++;
            pthread_mutex_unlock(&state_lock);
        }
        free(f.buf);
    }
    return NULL;
}

static void refuse(int code, const char *fmt, ...) {
    char msg[1024], op[8];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(op, sizeof op, "%d", code);
    send_frame(READY, 0, 0, "", op, (const uint8_t *)msg, strlen(msg));
    _exit(3);
}

static void limit(int resource, unsigned long long soft, unsigned long long hard, const char *n) {
    struct rlimit r = {(rlim_t)soft, (rlim_t)hard};
    if (soft && setrlimit(resource, &r) != 0)
        refuse(0, "cannot set the resource limits: %s: %s", n, strerror(errno));
}

int main(int argc, char **argv) {
    const char *library = NULL;
    unsigned long long as = 0, cpu = 0, files = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--fd=", 5) == 0) fd = atoi(a + 5);
        else if (strncmp(a, "--library=", 10) == 0) library = a + 10;
        else if (strncmp(a, "--address-space=", 16) == 0) as = strtoull(a + 16, NULL, 10);
        else if (strncmp(a, "--cpu-seconds=", 14) == 0) cpu = strtoull(a + 14, NULL, 10);
        else if (strncmp(a, "--open-files=", 13) == 0) files = strtoull(a + 13, NULL, 10);
    }
    if (fd < 0 || !library) {
        fprintf(stderr, "usage: %s --fd=N --library=PATH [limits]\n", argv[0]);
        return 2;
    }
    limit(RLIMIT_AS, as, as, "address space");
    limit(RLIMIT_CPU, cpu, cpu + 1, "cpu seconds"); /* SIGXCPU, then SIGKILL a second later */
    limit(RLIMIT_NOFILE, files, files, "open files");
    void *lib = dlopen(library, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!lib) {
        const char *e = dlerror();
        refuse(1, "%s", e ? e : "dlopen failed");
    }
    wascc_provider *(*create)(void) =
        (wascc_provider * (*)(void)) dlsym(lib, "__capability_provider_create");
    if (!create) refuse(2, "it does not export __capability_provider_create");
    provider = create();
    if (!provider) refuse(3, "__capability_provider_create returned NULL");
    if (provider->abi_version != WASCC_PROVIDER_ABI_VERSION)
        refuse(4, "it reports provider ABI version %u; this host speaks version %d",
               (unsigned)provider->abi_version, WASCC_PROVIDER_ABI_VERSION);
    if (!provider->configure_dispatch || !provider->handle_call || !provider->free_buffer ||
        !provider->stop || !provider->destroy)
        refuse(5, "its provider struct has a NULL function pointer");
    int32_t status = provider->configure_dispatch(provider->state, &dispatcher);
    if (status != WASCC_OK) refuse(0, "configure_dispatch returned %d", (int)status);
    char pid[24];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    send_frame(READY, 0, 1, "", "", (const uint8_t *)pid, strlen(pid));
    start_worker();
    for (;;) pause();
}
