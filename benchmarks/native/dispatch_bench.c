/*
 * dispatch_bench.c - a native provider (capability "wascc:dispatchbench")
 * that times dispatches from its own threads into an actor: how fast the
 * host routes provider -> actor calls, the path of every request a native
 * http_server or messaging provider hands to an actor.
 *
 * Built to a .so by benchmarks/bench_dataplane.py (the C ABI of
 * native/include/wascc/provider.h, on the skeleton of wpu.h).  Operations,
 * each with a payload of one text line and then the bytes to dispatch:
 *
 *   Once  "OPERATION ACTOR\n" + PAYLOAD
 *         one dispatch of OPERATION with PAYLOAD to ACTOR; answers the
 *         actor's reply (its error as this call's error), so the caller can
 *         check what the actor answers before timing it.
 *   Run   "THREADS COUNT OPERATION ACTOR\n" + PAYLOAD
 *         THREADS threads (1-64) each dispatch OPERATION with PAYLOAD to
 *         ACTOR COUNT times (>= 1).  Each thread first makes one untimed
 *         dispatch and keeps its reply; every timed reply must equal it.
 *         The clock starts when every thread is ready and stops
 *         when the last one is done.  Answers
 *         "ns=ELAPSED ok=N bad=M err=K" (bad: a reply that differed,
 *         err: a dispatch that failed).
 *
 * A malformed line, a thread or call count out of range, no dispatcher yet
 * (not configured, or stopped) are refused with a message saying which.
 * Which actor may be dispatched to is the host's business: ACTOR must be
 * bound to this provider (provider.h, section 4).
 */
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "wpu.h"

#define BENCH_CAPABILITY "wascc:dispatchbench"
#define BENCH_MAX_THREADS 64

static const wpu_operation OPS[] = {
    {"Once", 1, "one dispatch: \"OPERATION ACTOR\\n\" + payload; answers the actor's reply"},
    {"Run", 1, "\"THREADS COUNT OPERATION ACTOR\\n\" + payload; answers \"ns= ok= bad= err=\""},
};

static const wpu_descriptor_t DESCRIPTOR = {
    BENCH_CAPABILITY, "dispatch benchmark", "0.1", 1,
    "times dispatches from provider threads into an actor (benchmarks/bench_dataplane.py)",
    OPS, sizeof OPS / sizeof OPS[0],
};

/* What one call asks for, parsed from its first line. */
typedef struct {
    long threads, count;
    char op[128];
    char actor[128];
    const uint8_t *payload;
    size_t payload_len;
} request_t;

/* Parse "FIELDS...\n" + payload; `with_counts` for Run.  0, or -1 with *out set. */
static int parse(const wpu_call *call, int with_counts, request_t *r, uint8_t **out,
                 size_t *out_len) {
    const uint8_t *nl = call->len ? memchr(call->msg, '\n', call->len) : NULL;
    const char *form = with_counts ? "\"THREADS COUNT OPERATION ACTOR\\n\" + payload"
                                   : "\"OPERATION ACTOR\\n\" + payload";
    if (!nl || (size_t)(nl - call->msg) >= 512) {
        wpu_error(out, out_len, "%s %s: the payload must start with one line, %s",
                  BENCH_CAPABILITY, call->op, form);
        return -1;
    }
    char line[512];
    size_t n = (size_t)(nl - call->msg);
    memcpy(line, call->msg, n);
    line[n] = 0;
    memset(r, 0, sizeof *r);
    char extra[2];
    int fields = with_counts
                     ? sscanf(line, "%ld %ld %127s %127s %1s", &r->threads, &r->count, r->op,
                              r->actor, extra)
                     : sscanf(line, "%127s %127s %1s", r->op, r->actor, extra);
    if (fields != (with_counts ? 4 : 2)) {
        wpu_error(out, out_len, "%s %s: cannot read the line '%s'; expected %s",
                  BENCH_CAPABILITY, call->op, line, form);
        return -1;
    }
    if (with_counts && (r->threads < 1 || r->threads > BENCH_MAX_THREADS)) {
        wpu_error(out, out_len, "%s Run: THREADS is %ld; it must be 1 to %d", BENCH_CAPABILITY,
                  r->threads, BENCH_MAX_THREADS);
        return -1;
    }
    if (with_counts && r->count < 1) {
        wpu_error(out, out_len, "%s Run: COUNT is %ld; it must be at least 1", BENCH_CAPABILITY,
                  r->count);
        return -1;
    }
    r->payload = nl + 1;
    r->payload_len = call->len - n - 1;
    return 0;
}

/* The starting line: workers report ready, then wait for go (or cancel). */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    long ready;
    int go, cancel;
} start_t;

typedef struct {
    const wascc_dispatcher *d;
    const request_t *r;
    start_t *start;
    long ok, bad, err;
} worker_t;

/* Ready; 1 when the run goes on, 0 when it was cancelled. */
static int wait_for_go(start_t *s) {
    pthread_mutex_lock(&s->lock);
    s->ready++;
    pthread_cond_broadcast(&s->changed);
    while (!s->go) pthread_cond_wait(&s->changed, &s->lock);
    int go = !s->cancel;
    pthread_mutex_unlock(&s->lock);
    return go;
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    const wascc_dispatcher *d = w->d;
    const request_t *r = w->r;
    uint8_t *first = NULL;
    size_t first_len = 0;
    int32_t first_rc = d->dispatch(d->host_data, r->actor, r->op, r->payload, r->payload_len,
                                   &first, &first_len);
    if (wait_for_go(w->start)) {
        for (long i = 0; i < r->count; i++) {
            uint8_t *out = NULL;
            size_t out_len = 0;
            int32_t rc = d->dispatch(d->host_data, r->actor, r->op, r->payload, r->payload_len,
                                     &out, &out_len);
            if (rc != WASCC_OK) w->err++;
            else if (first_rc == WASCC_OK && out_len == first_len &&
                     (out_len == 0 || memcmp(out, first, out_len) == 0))
                w->ok++;
            else w->bad++;
            if (out) d->free_buffer(d->host_data, out);
        }
    }
    if (first) d->free_buffer(d->host_data, first);
    return NULL;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int32_t run(const wascc_dispatcher *d, const request_t *r, uint8_t **out,
                   size_t *out_len) {
    worker_t workers[BENCH_MAX_THREADS];
    pthread_t threads[BENCH_MAX_THREADS];
    start_t start = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
    long started = 0;
    for (; started < r->threads; started++) {
        workers[started] = (worker_t){d, r, &start, 0, 0, 0};
        if (pthread_create(&threads[started], NULL, worker_main, &workers[started]) != 0) break;
    }
    pthread_mutex_lock(&start.lock);
    while (start.ready < started) pthread_cond_wait(&start.changed, &start.lock);
    /* the clock starts before any worker may: a worker woken by the
     * broadcast can finish before this thread runs again */
    int64_t begin = now_ns();
    start.go = 1;
    start.cancel = started < r->threads;
    pthread_cond_broadcast(&start.changed);
    pthread_mutex_unlock(&start.lock);
    long ok = 0, bad = 0, err = 0;
    for (long t = 0; t < started; t++) {
        pthread_join(threads[t], NULL);
        ok += workers[t].ok;
        bad += workers[t].bad;
        err += workers[t].err;
    }
    int64_t elapsed = now_ns() - begin;
    if (started < r->threads)
        return wpu_error(out, out_len, "%s Run: could start only %ld of %ld threads",
                         BENCH_CAPABILITY, started, r->threads);
    char text[160];
    int n = snprintf(text, sizeof text, "ns=%lld ok=%ld bad=%ld err=%ld", (long long)elapsed, ok,
                     bad, err);
    *out = (uint8_t *)wpu_strndup(text, (size_t)n);
    *out_len = *out ? (size_t)n : 0;
    return WASCC_OK;
}

static int32_t once(const wascc_dispatcher *d, const request_t *r, uint8_t **out,
                    size_t *out_len) {
    uint8_t *reply = NULL;
    size_t reply_len = 0;
    int32_t rc =
        d->dispatch(d->host_data, r->actor, r->op, r->payload, r->payload_len, &reply, &reply_len);
    /* The reply is the host's; hand the caller a copy of our own. */
    *out = reply_len ? malloc(reply_len) : NULL;
    if (reply_len && !*out) {
        d->free_buffer(d->host_data, reply);
        return wpu_error(out, out_len, "%s Once: out of memory", BENCH_CAPABILITY);
    }
    if (reply_len) memcpy(*out, reply, reply_len);
    *out_len = reply_len;
    if (reply) d->free_buffer(d->host_data, reply);
    return rc == WASCC_OK ? WASCC_OK : WASCC_ERROR;
}

static int32_t bench_call(void *state, const wpu_call *call, uint8_t **out, size_t *out_len) {
    const wascc_dispatcher *d = wpu_dispatcher(state);
    if (!d)
        return wpu_error(out, out_len, "%s %s: no dispatcher (not configured yet, or stopped)",
                         BENCH_CAPABILITY, call->op);
    int is_run = strcmp(call->op, "Run") == 0;
    request_t r;
    if (parse(call, is_run, &r, out, out_len) != 0) return WASCC_ERROR;
    return is_run ? run(d, &r, out, out_len) : once(d, &r, out, out_len);
}

static const wpu_provider_def DEF = {
    .descriptor = &DESCRIPTOR,
    .state_size = 1,
    .call = bench_call,
};

WPU_PROVIDER(DEF)
