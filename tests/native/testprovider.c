/*
 * testprovider.c - a native provider for wascc's tests (capability
 * "wascc:nativetest").  Compiled by tests/conftest.py into several variants:
 *
 *   (none)              well behaved
 *   -DRETURN_NULL       __capability_provider_create returns NULL
 *   -DBAD_ABI           reports ABI version 99
 *   -DNO_ENTRY          does not export __capability_provider_create
 *   -DNULL_FN           leaves handle_call NULL
 *   -DGARBAGE_DESCRIPTOR answers GetCapabilityDescriptor with non-msgpack bytes
 *   -DUNHEALTHY         answers HealthRequest with healthy = false
 *   -DVERSION2          describes itself as version 0.2 (a "new build")
 *   -DCRASH_AFTER_MS=N  segfaults N milliseconds after it is created (crash-looping)
 *
 * Operations: Echo (payload back), Fail (an error), Garbage (non-msgpack
 * reply), Block (sleeps <payload> milliseconds, then answers "done"),
 * Flood (payload "THREADS COUNT [ACTOR]": that many threads each dispatch
 * COUNT "Echo" calls with unique payloads to ACTOR, or to the last bound
 * actor, and check every reply; answers "ok=N bad=M err=K"), Crash (payload
 * "segv" dereferences NULL, "abort" calls abort(), "exit" calls _exit(7)),
 * Pid (answers the process id, to show where the provider runs).
 *
 * Lifecycle events are appended, one per line, to the file named by the
 * environment variable WASCC_TEST_LOG when it is set.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wpu.h"

typedef struct {
    wascc_provider *self;
    const wascc_dispatcher *dispatcher;
    pthread_mutex_t lock;
    char bound[64];
    int n_bound;
} state_t;

static void note(const char *event, const char *detail) {
    const char *path = getenv("WASCC_TEST_LOG");
    if (!path) return;
    FILE *f = fopen(path, "a");
    if (!f) return;
    fprintf(f, "%s%s%s\n", event, detail ? " " : "", detail ? detail : "");
    fclose(f);
}

static const wpu_operation OPS[] = {
    {"Echo", 1, "returns the payload"},
    {"Fail", 1, "always fails"},
    {"Block", 1, "sleeps, then answers"},
    {"Flood", 1, "dispatches from provider threads"},
    {"Crash", 1, "crashes the process (segv, abort, exit)"},
    {"Pid", 1, "the process id"},
};

#ifdef VERSION2
#define TEST_VERSION "0.2"
#else
#define TEST_VERSION "0.1"
#endif

static const wpu_descriptor_t DESCRIPTOR = {
    "wascc:nativetest", "native test provider", TEST_VERSION, 1,
    "a deliberately configurable provider for the test suite",
    OPS, sizeof OPS / sizeof OPS[0],
};

typedef struct {
    state_t *st;
    char actor[64];
    int thread_no;
    int count;
    int ok, bad, err;
} flood_t;

static void *flood_main(void *arg) {
    flood_t *f = arg;
    const wascc_dispatcher *d = f->st->dispatcher;
    for (int i = 0; i < f->count; i++) {
        char payload[64];
        int n = snprintf(payload, sizeof payload, "thread %d call %d", f->thread_no, i);
        uint8_t *out = NULL;
        size_t out_len = 0;
        int32_t rc = d->dispatch(d->host_data, f->actor, "Echo", (const uint8_t *)payload,
                                 (size_t)n, &out, &out_len);
        if (rc != WASCC_OK) f->err++;
        else if (out_len == (size_t)n && memcmp(out, payload, (size_t)n) == 0) f->ok++;
        else f->bad++;
        if (out) d->free_buffer(d->host_data, out);
    }
    return NULL;
}

static int32_t flood(state_t *st, const uint8_t *msg, size_t len, uint8_t **out,
                     size_t *out_len) {
    char text[128] = {0};
    char target[64] = {0};
    memcpy(text, msg, len < sizeof text - 1 ? len : sizeof text - 1);
    int threads = 0, count = 0;
    int fields = sscanf(text, "%d %d %63s", &threads, &count, target);
    if (fields < 2 || threads < 1 || threads > 64)
        return wpu_error(out, out_len, "Flood wants \"THREADS COUNT [ACTOR]\"");
    if (!st->dispatcher || (fields < 3 && !st->n_bound))
        return wpu_error(out, out_len, "no actor is bound");
    flood_t *fs = calloc((size_t)threads, sizeof *fs);
    pthread_t *ts = calloc((size_t)threads, sizeof *ts);
    for (int t = 0; t < threads; t++) {
        fs[t].st = st;
        fs[t].thread_no = t;
        fs[t].count = count;
        pthread_mutex_lock(&st->lock);
        memcpy(fs[t].actor, fields == 3 ? target : st->bound, sizeof fs[t].actor);
        pthread_mutex_unlock(&st->lock);
        pthread_create(&ts[t], NULL, flood_main, &fs[t]);
    }
    int ok = 0, bad = 0, err = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(ts[t], NULL);
        ok += fs[t].ok;
        bad += fs[t].bad;
        err += fs[t].err;
    }
    free(fs);
    free(ts);
    char result[96];
    int n = snprintf(result, sizeof result, "ok=%d bad=%d err=%d", ok, bad, err);
    *out = (uint8_t *)wpu_strndup(result, (size_t)n);
    *out_len = (size_t)n;
    return WASCC_OK;
}

static void crash(const char *how, size_t len) {
    if (len == 4 && memcmp(how, "segv", 4) == 0) {
        volatile int *nowhere = NULL;
        *nowhere = 1;
    }
    if (len == 5 && memcmp(how, "abort", 5) == 0) abort();
    if (len == 4 && memcmp(how, "exit", 4) == 0) _exit(7);
}

static int32_t configure_dispatch(void *state, const wascc_dispatcher *d) {
    ((state_t *)state)->dispatcher = d;
    note("configure", NULL);
    return WASCC_OK;
}

static int32_t handle_call(void *state, const char *actor, const char *op, const uint8_t *msg,
                           size_t len, uint8_t **out, size_t *out_len) {
    state_t *st = state;
    int system = strcmp(actor, WPU_SYSTEM) == 0;
    if (strcmp(op, "GetCapabilityDescriptor") == 0) {
#ifdef GARBAGE_DESCRIPTOR
        *out = (uint8_t *)wpu_strndup("\xc1 garbage", 9);
        *out_len = 9;
        return WASCC_OK;
#else
        return wpu_descriptor_reply(&DESCRIPTOR, out, out_len);
#endif
    }
    if (strcmp(op, "HealthRequest") == 0) {
#ifdef UNHEALTHY
        return wpu_health(out, out_len, 0, "unhealthy on purpose");
#else
        return wpu_health(out, out_len, 1, "");
#endif
    }
    if (strcmp(op, "BindActor") == 0 || strcmp(op, "RemoveActor") == 0) {
        if (!system) return wpu_error(out, out_len, "%s is reserved for the host", op);
        wpu_config c;
        if (wpu_config_parse(msg, len, &c) != 0)
            return wpu_error(out, out_len, "%s: not a CapabilityConfiguration", op);
        int bind = op[0] == 'B';
        note(bind ? "bind" : "remove", c.module);
        pthread_mutex_lock(&st->lock);
        if (bind) {
            snprintf(st->bound, sizeof st->bound, "%s", c.module);
            st->n_bound = 1;
        } else if (strcmp(st->bound, c.module) == 0) {
            st->n_bound = 0;
        }
        pthread_mutex_unlock(&st->lock);
        wpu_config_free(&c);
        return wpu_empty(out, out_len);
    }
    if (strcmp(op, "Echo") == 0) {
        *out = len ? malloc(len) : NULL;
        if (len) memcpy(*out, msg, len);
        *out_len = len;
        return WASCC_OK;
    }
    if (strcmp(op, "Fail") == 0)
        return wpu_error(out, out_len, "failed on purpose: %.*s", (int)len, (const char *)msg);
    if (strcmp(op, "Garbage") == 0) {
        *out = (uint8_t *)wpu_strndup("\xc1\xc1\xc1", 3);
        *out_len = 3;
        return WASCC_OK;
    }
    if (strcmp(op, "Block") == 0) {
        char text[16] = {0};
        memcpy(text, msg, len < 15 ? len : 15);
        long ms = atol(text);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        *out = (uint8_t *)wpu_strndup("done", 4);
        *out_len = 4;
        return WASCC_OK;
    }
    if (strcmp(op, "Flood") == 0) return flood(st, msg, len, out, out_len);
    if (strcmp(op, "Crash") == 0) {
        crash((const char *)msg, len);
        return wpu_error(out, out_len, "Crash wants segv, abort or exit");
    }
    if (strcmp(op, "Pid") == 0) {
        char text[32];
        int n = snprintf(text, sizeof text, "%ld", (long)getpid());
        *out = (uint8_t *)wpu_strndup(text, (size_t)n);
        *out_len = (size_t)n;
        return WASCC_OK;
    }
    return wpu_error(out, out_len, "wascc:nativetest has no operation %s", op);
}

static void stop(void *state) {
    (void)state;
    note("stop", NULL);
}

static void destroy(void *state) {
    state_t *st = state;
    note("destroy", NULL);
    pthread_mutex_destroy(&st->lock);
    free(st->self);
    free(st);
}

#ifdef NO_ENTRY
#define ENTRY_NAME not_the_entry_point
#else
#define ENTRY_NAME __capability_provider_create
#endif

#ifdef CRASH_AFTER_MS
static void *crash_later(void *arg) {
    (void)arg;
    struct timespec ts = {CRASH_AFTER_MS / 1000, (CRASH_AFTER_MS % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    crash("segv", 4);
    return NULL;
}
#endif

WASCC_EXPORT wascc_provider *ENTRY_NAME(void) {
#ifdef RETURN_NULL
    return NULL;
#endif
    static const wascc_provider template = {
        WASCC_PROVIDER_ABI_VERSION, NULL, configure_dispatch, handle_call, wpu_free, stop,
        destroy,
    };
    wascc_provider *p = malloc(sizeof *p);
    state_t *st = calloc(1, sizeof *st);
    if (!p || !st) return NULL;
    *p = template;
    pthread_mutex_init(&st->lock, NULL);
    p->state = st;
    st->self = p;
#ifdef BAD_ABI
    p->abi_version = 99;
#endif
#ifdef NULL_FN
    p->handle_call = NULL;
#endif
    note("create", TEST_VERSION);
#ifdef CRASH_AFTER_MS
    pthread_t timer;
    pthread_create(&timer, NULL, crash_later, NULL);
    pthread_detach(timer);
#endif
    return p;
}
