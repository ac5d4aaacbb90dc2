/*
 * wascc_route.c - the data plane: instance pools, call counters and the
 * routing tables (DESIGN "Two planes").  Included after wascc_host.c in the
 * same translation unit (it uses its instance state).
 *
 * The control plane (wascc/host.py) decides who may call whom and writes it
 * into a wh_router: actors (their pools) and routes (actor, capability,
 * binding) -> a native provider and whether the provider may dispatch to the
 * actor.  Once written, a call from a native provider's thread into an
 * actor, the actor's host calls to native providers and to other actors, and
 * the replies run here without the GIL.  Python is entered only for what
 * must run there: a route the tables do not hold (a Python provider, a
 * remote actor, a refusal to word), a plugin (the router is then "Python
 * only"), a failure to describe and report, a log line.
 *
 * Concurrency: the tables are read under a read lock and written under the
 * write lock, so a call sees a route whole or not at all.  A reader takes a
 * reference to what it found (a pool, or an in-flight count on a native
 * provider) before it lets go of the lock, so nothing is freed under it: a
 * pool is freed with its last reference, and a native provider is destroyed
 * only when no call is in flight (wh_native_stop).
 */

/* ---- shards ---------------------------------------------------------- */

/* Counters a call bumps on every call are split in WH_SHARDS cache lines,
 * one picked per thread, so threads on different cores do not pass the
 * same line back and forth; readers add the shards up. */
#define WH_SHARDS 8
#define CACHE_LINE 64
typedef struct {
    _Alignas(CACHE_LINE) _Atomic uint64_t n;
} counter_t;

static _Atomic unsigned next_shard;
static __thread int my_shard = -1;

static inline unsigned shard(void) {
    if (my_shard < 0) my_shard = (int)(atomic_fetch_add(&next_shard, 1) % WH_SHARDS);
    return (unsigned)my_shard;
}

static uint64_t counter_sum(const counter_t *c) {
    uint64_t sum = 0;
    for (int i = 0; i < WH_SHARDS; i++) sum += atomic_load_explicit(&c[i].n, memory_order_relaxed);
    return sum;
}

/* calloc, aligned to a cache line (for structs holding counter_t) */
static void *calloc_lines(size_t size) {
    size = (size + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    void *p = aligned_alloc(CACHE_LINE, size);
    if (p) memset(p, 0, size);
    return p;
}

/* ---- counters -------------------------------------------------------- */

static double bucket_bounds[WH_NBUCKETS];
static size_t nbounds;

void wh_set_buckets(const double *bounds, size_t n) {
    if (n > WH_NBUCKETS - 1) n = WH_NBUCKETS - 1;
    memcpy(bucket_bounds, bounds, n * sizeof *bounds);
    nbounds = n;
}

typedef struct {
    counter_t calls[WH_SHARDS];
    char *name;
    size_t len;
    _Atomic uint64_t timed;
    _Atomic uint64_t ns;
    _Atomic uint64_t buckets[WH_NBUCKETS];
} op_stats;

struct wh_stats {
    pthread_mutex_t mu;
    _Atomic size_t n;                 /* named slots in use (at most WH_MAX_OPS) */
    op_stats *_Atomic ops[WH_MAX_OPS + 1]; /* the last one is "other" */
};

static wh_stats *stats_new(void) {
    wh_stats *s = calloc(1, sizeof *s);
    if (s) pthread_mutex_init(&s->mu, NULL);
    return s;
}

static void stats_free(wh_stats *s) {
    if (!s) return;
    for (size_t i = 0; i <= WH_MAX_OPS; i++) {
        op_stats *o = atomic_load(&s->ops[i]);
        if (o) free(o->name);
        free(o);
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static op_stats *op_new(const char *name, size_t len) {
    op_stats *o = calloc_lines(sizeof *o);
    if (!o) return NULL;
    o->name = dup_bytes(name, len);
    if (!o->name) {
        free(o);
        return NULL;
    }
    o->len = len;
    return o;
}

/* The counters of `op` (the "other" slot past WH_MAX_OPS names); NULL only
 * when out of memory (the call then goes uncounted). */
static op_stats *stats_op(wh_stats *s, const char *op, size_t len) {
    size_t n = atomic_load_explicit(&s->n, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        op_stats *o = atomic_load_explicit(&s->ops[i], memory_order_relaxed);
        if (o->len == len && memcmp(o->name, op, len) == 0) return o;
    }
    pthread_mutex_lock(&s->mu);
    op_stats *found = NULL;
    n = atomic_load(&s->n);
    for (size_t i = 0; i < n && !found; i++) {
        op_stats *o = atomic_load(&s->ops[i]);
        if (o->len == len && memcmp(o->name, op, len) == 0) found = o;
    }
    if (!found && n < WH_MAX_OPS) {
        found = op_new(op, len);
        if (found) {
            atomic_store(&s->ops[n], found);
            atomic_store_explicit(&s->n, n + 1, memory_order_release);
        }
    } else if (!found) {
        found = atomic_load(&s->ops[WH_MAX_OPS]);
        if (!found) {
            found = op_new("other", 5);
            if (found) atomic_store(&s->ops[WH_MAX_OPS], found);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Count one call; returns the start time when this call is to be timed
 * (one in WH_SAMPLE_EVERY of each shard: the 1st, 65th...), else 0. */
static uint64_t stats_begin(op_stats *o) {
    if (!o) return 0;
    uint64_t k = atomic_fetch_add_explicit(&o->calls[shard()].n, 1, memory_order_relaxed);
    return (k & (WH_SAMPLE_EVERY - 1)) == 0 ? now_ns() : 0;
}

static void stats_end(op_stats *o, uint64_t started) {
    if (!o || !started) return;
    uint64_t ns = now_ns() - started;
    double seconds = (double)ns / 1e9;
    size_t slot = 0;
    while (slot < nbounds && bucket_bounds[slot] < seconds) slot++;
    atomic_fetch_add_explicit(&o->timed, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&o->ns, ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&o->buckets[slot], 1, memory_order_relaxed);
}

wh_stats *wh_stats_new(void) { return stats_new(); }

void wh_stats_free(wh_stats *s) { stats_free(s); }

void wh_stats_record(wh_stats *s, const char *op, size_t len, double seconds) {
    op_stats *o = stats_op(s, op, len);
    if (!o) return;
    atomic_fetch_add_explicit(&o->calls[shard()].n, 1, memory_order_relaxed);
    uint64_t ns = seconds > 0 ? (uint64_t)(seconds * 1e9) : 0;
    size_t slot = 0;
    while (slot < nbounds && bucket_bounds[slot] < seconds) slot++;
    atomic_fetch_add_explicit(&o->timed, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&o->ns, ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&o->buckets[slot], 1, memory_order_relaxed);
}

int wh_stats_get(wh_stats *s, size_t i, wh_op_stats *out) {
    if (!s || i > WH_MAX_OPS) return 0;
    op_stats *o = atomic_load_explicit(&s->ops[i], memory_order_acquire);
    if (!o) return 0;
    out->name = o->name;
    out->name_len = o->len;
    out->calls = counter_sum(o->calls);
    out->timed = atomic_load(&o->timed);
    out->ns = atomic_load(&o->ns);
    for (size_t b = 0; b < WH_NBUCKETS; b++) out->buckets[b] = atomic_load(&o->buckets[b]);
    return 1;
}

/* ---- request structs (codec eras) ------------------------------------ */

/* Operations whose payload is a request struct an older actor may read in
 * another form (wascc/wire/codec.py): a dispatch of one of these goes
 * through Python until the actor is known to read the map form. */
static char **request_structs;
static size_t nrequest_structs;

static int split_lines(const char *text, char ***out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (!text || !*text) return 0;
    size_t count = 1;
    for (const char *p = text; *p; p++) count += *p == '\n';
    char **items = calloc(count, sizeof *items);
    if (!items) return -1;
    size_t k = 0;
    const char *start = text;
    for (const char *p = text;; p++) {
        if (*p == '\n' || *p == 0) {
            if (p > start) {
                items[k] = dup_bytes(start, (size_t)(p - start));
                if (!items[k]) {
                    for (size_t j = 0; j < k; j++) free(items[j]);
                    free(items);
                    return -1;
                }
                k++;
            }
            if (*p == 0) break;
            start = p + 1;
        }
    }
    *out = items;
    *n = k;
    return 0;
}

static void free_lines(char **items, size_t n) {
    for (size_t i = 0; i < n; i++) free(items[i]);
    free(items);
}

static int in_lines(char **items, size_t n, const char *s, size_t len) {
    for (size_t i = 0; i < n; i++)
        if (strlen(items[i]) == len && memcmp(items[i], s, len) == 0) return 1;
    return 0;
}

int wh_set_request_structs(const char *ops) {
    char **items;
    size_t n;
    if (split_lines(ops, &items, &n) != 0) return -1;
    free_lines(request_structs, nrequest_structs);
    request_structs = items;
    nrequest_structs = n;
    return 0;
}

/* ---- instance pools -------------------------------------------------- */

/* The result of the calls Python makes (wh_pool_call): one buffer per
 * thread, valid until this thread's next call (Python copies it at once). */
static __thread buf_t tls_result;

/* Never NULL (an empty reply has no buffer): Python reads it without a check. */
static const char *nonnull(const unsigned char *p) { return p ? (const char *)p : ""; }

static void tls_result_set(wh_result *out, const char *data, size_t len) {
    buf_assign(&tls_result, data, len);
    out->data = nonnull(tls_result.data);
    out->len = tls_result.len;
}


/* An idle instance sits in a slot of its own cache line: a call takes one
 * with an atomic exchange and gives it back with a compare-and-swap, each
 * thread starting at its own slot, so calls on different cores do not
 * contend.  There are as many slots as the pool may hold instances, so a
 * released instance always finds one free. */
typedef struct {
    _Alignas(CACHE_LINE) wh_instance *_Atomic inst;
} slot_t;

struct wh_pool {
    pthread_mutex_t mu; /* size, waits, empty_told; the waiters' condition */
    pthread_cond_t cv;
    _Atomic int refs;
    slot_t *slots;
    uint32_t size, max;
    _Atomic uint32_t waiting;
    _Atomic int retired;
    int empty_told;
    uint64_t waits;
    _Atomic uint64_t errors;
    void *engine, *pre, *py_host, *py_owner;
    int64_t memory_limit;
    int wasi;
    double deadline, tick;
    uint64_t ticks, cap_floor, cap_half;
    wh_stats *stats;
    /* who it is, for the router (set once, before it is published) */
    wh_router *router;
    char *key;
    char **caps;
    size_t ncaps;
    /* request-struct operations this actor reads in the map form */
    pthread_mutex_t map_mu;
    char *_Atomic map_ops; /* "\nop1\nop2\n", replaced whole */
};

static uint64_t ticks_for(const wh_pool *p, double seconds) {
    double t = seconds / p->tick;
    uint64_t n = (uint64_t)t;
    if ((double)n < t) n++;
    if (n < 1) n = 1;
    return n + 1;
}

wh_pool *wh_pool_new(void *engine, void *pre, void *py_host, void *py_owner,
                     int64_t memory_limit, double deadline, double tick, uint32_t max_size,
                     int wasi) {
    if (max_size < 1) return NULL;
    wh_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->slots = calloc_lines((size_t)max_size * sizeof *p->slots);
    p->stats = stats_new();
    if (!p->slots || !p->stats) {
        free(p->slots);
        stats_free(p->stats);
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->map_mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* deadlines immune to clock jumps */
    pthread_cond_init(&p->cv, &attr);
    pthread_condattr_destroy(&attr);
    atomic_init(&p->refs, 1);
    p->max = max_size;
    p->engine = engine;
    p->pre = pre;
    p->py_host = py_host;
    p->py_owner = py_owner;
    p->memory_limit = memory_limit;
    p->wasi = wasi;
    p->deadline = deadline;
    p->tick = tick > 0 ? tick : 0.005;
    p->ticks = ticks_for(p, deadline);
    /* An instance above cap_floor cannot grow at all; a failed call that
     * grew memory past cap_half most likely had a growth refused. */
    p->cap_floor = memory_limit >= 0 ? (uint64_t)memory_limit - 65536 : UINT64_MAX;
    p->cap_half = memory_limit >= 0 ? (uint64_t)memory_limit / 2 : UINT64_MAX;
    return p;
}

static void pool_ref(wh_pool *p) { atomic_fetch_add(&p->refs, 1); }

static void pool_free(wh_pool *p) {
    for (uint32_t i = 0; i < p->max; i++) wh_instance_delete(atomic_load(&p->slots[i].inst));
    free(p->slots);
    stats_free(p->stats);
    free(p->key);
    free_lines(p->caps, p->ncaps);
    free(atomic_load(&p->map_ops));
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->map_mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}

void wh_pool_unref(wh_pool *p) {
    if (p && atomic_fetch_sub(&p->refs, 1) == 1) pool_free(p);
}

int wh_pool_identify(wh_pool *p, const char *key, const char *caps) {
    free(p->key);
    free_lines(p->caps, p->ncaps);
    p->key = dup_bytes(key, strlen(key));
    if (!p->key) return -1;
    return split_lines(caps, &p->caps, &p->ncaps);
}

int wh_pool_read_map(wh_pool *p, const char *op) {
    size_t len = strlen(op);
    pthread_mutex_lock(&p->map_mu);
    char *old = atomic_load(&p->map_ops);
    size_t old_len = old ? strlen(old) : 1;
    char *next = malloc(old_len + len + 2);
    int rc = -1;
    if (next) {
        if (old) memcpy(next, old, old_len);
        else next[0] = '\n';
        memcpy(next + old_len, op, len);
        next[old_len + len] = '\n';
        next[old_len + len + 1] = 0;
        atomic_store(&p->map_ops, next);
        rc = 0;
    }
    pthread_mutex_unlock(&p->map_mu);
    /* the old list is leaked on purpose: a reader may still scan it (a few
     * bytes, once per operation per actor module) */
    return rc;
}

static int pool_reads_map(wh_pool *p, const char *op, size_t len) {
    const char *list = atomic_load(&p->map_ops);
    if (!list) return 0;
    for (const char *s = list; (s = strchr(s, '\n')) && s[1]; s++)
        if (strncmp(s + 1, op, len) == 0 && s[1 + len] == '\n') return 1;
    return 0;
}

/* Called with p->mu held: is the pool now retired and empty (once)? */
static int pool_now_empty(wh_pool *p) {
    if (p->retired && p->size == 0 && !p->empty_told) {
        p->empty_told = 1;
        return 1;
    }
    return 0;
}

static void pool_close(wh_pool *p, wh_instance *inst) {
    wh_instance_delete(inst);
    pthread_mutex_lock(&p->mu);
    p->size--;
    pthread_cond_signal(&p->cv);
    int empty = pool_now_empty(p);
    pthread_mutex_unlock(&p->mu);
    if (empty) wh_py_pool_empty(p->py_owner);
}

static wh_instance *slots_take(wh_pool *p) {
    uint32_t n = p->max, at = shard() % n;
    for (uint32_t i = 0; i < n; i++, at = at + 1 == n ? 0 : at + 1) {
        slot_t *s = &p->slots[at];
        if (atomic_load_explicit(&s->inst, memory_order_relaxed)) {
            wh_instance *inst = atomic_exchange(&s->inst, NULL);
            if (inst) return inst;
        }
    }
    return NULL;
}

static void slots_put(wh_pool *p, wh_instance *inst) {
    uint32_t n = p->max, at = shard() % n;
    for (;;) { /* a slot is always free: at most max instances live */
        for (uint32_t i = 0; i < n; i++, at = at + 1 == n ? 0 : at + 1) {
            wh_instance *none = NULL;
            if (atomic_compare_exchange_strong(&p->slots[at].inst, &none, inst)) return;
        }
    }
}

static void slots_drain(wh_pool *p) {
    for (uint32_t i = 0; i < p->max; i++) {
        wh_instance *inst = atomic_exchange(&p->slots[i].inst, NULL);
        if (inst) pool_close(p, inst);
    }
}

static void pool_release(wh_pool *p, wh_instance *inst) {
    if (atomic_load(&p->retired)) {
        pool_close(p, inst);
        return;
    }
    slots_put(p, inst);
    /* A waiter counts itself before its last look at the slots (holding
     * mu until it sleeps): either it sees this instance, or this sees it. */
    if (atomic_load(&p->waiting)) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    if (atomic_load(&p->retired)) slots_drain(p); /* retired meanwhile: do not strand it */
}

static wh_instance *pool_create(wh_pool *p, uint64_t ticks, wh_result *out) {
    void *wasi = p->wasi ? wh_py_wasi_config(p->py_owner) : NULL;
    int status = WH_HOST_FAILURE;
    char *err = NULL;
    wh_instance *inst = NULL;
    if (p->wasi && !wasi)
        err = dup_bytes("cannot create the WASI context", 30);
    else
        inst = wh_instance_new(p->engine, p->pre, p->py_host, p->memory_limit, wasi, ticks,
                               &status, &err);
    if (inst) {
        STATE(inst)->pool = p;
        return inst;
    }
    out->status = WH_START_FAILED;
    out->start_status = status;
    tls_result_set(out, err ? err : "host out of memory", err ? strlen(err) : 18);
    free(err);
    return NULL;
}

int wh_pool_fill(wh_pool *p, uint32_t n, wh_result *out) {
    for (uint32_t i = 0; i < n; i++) {
        pthread_mutex_lock(&p->mu);
        if (p->size >= p->max || atomic_load(&p->retired)) {
            pthread_mutex_unlock(&p->mu);
            return 0;
        }
        p->size++;
        pthread_mutex_unlock(&p->mu);
        wh_instance *inst = pool_create(p, p->ticks, out);
        if (!inst) {
            pthread_mutex_lock(&p->mu);
            p->size--;
            int empty = pool_now_empty(p);
            pthread_mutex_unlock(&p->mu);
            if (empty) wh_py_pool_empty(p->py_owner);
            return -1;
        }
        pool_release(p, inst);
    }
    return 0;
}

static void deadline_after(struct timespec *ts, double seconds) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    double whole = (double)(long)seconds;
    ts->tv_sec += (time_t)whole;
    ts->tv_nsec += (long)((seconds - whole) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static wh_instance *pool_acquire(wh_pool *p, double wait, uint64_t ticks, wh_result *out) {
    wh_instance *inst = slots_take(p);
    if (inst) return inst;
    struct timespec until;
    int waited = 0, timed_out = 0;
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->waiting, 1);
    for (;;) {
        inst = slots_take(p);
        if (inst) break;
        if (atomic_load(&p->retired)) {
            out->status = WH_RETIRED;
            break;
        }
        if (p->size < p->max) {
            p->size++;
            atomic_fetch_sub(&p->waiting, 1);
            pthread_mutex_unlock(&p->mu);
            inst = pool_create(p, ticks, out);
            if (!inst) {
                pthread_mutex_lock(&p->mu);
                p->size--;
                pthread_cond_signal(&p->cv);
                int empty = pool_now_empty(p);
                pthread_mutex_unlock(&p->mu);
                if (empty) wh_py_pool_empty(p->py_owner);
            }
            return inst;
        }
        if (timed_out) {
            out->status = WH_BUSY;
            break;
        }
        if (!waited) {
            waited = 1;
            p->waits++;
            deadline_after(&until, wait);
        }
        if (pthread_cond_timedwait(&p->cv, &p->mu, &until) != 0) timed_out = 1;
    }
    atomic_fetch_sub(&p->waiting, 1);
    pthread_mutex_unlock(&p->mu);
    return inst;
}

/* One call on an instance of `p`; the result goes to `sink` (the caller's
 * buffer).  Counts it, and keeps or drops the instance by how it ended. */
static void pool_call(wh_pool *p, const char *op, size_t op_len, const char *msg,
                      size_t msg_len, double budget, buf_t *sink, wh_result *out) {
    double wait = p->deadline;
    uint64_t ticks = p->ticks;
    if (budget > 0 && budget < wait) {
        wait = budget < 0.001 ? 0.001 : budget;
        ticks = ticks_for(p, wait);
    }
    out->at_cap = 0;
    out->memory_size = 0;
    out->trap_code = -1;
    out->start_status = 0;
    wh_instance *inst = pool_acquire(p, wait, ticks, out);
    if (!inst) {
        if (out->status != WH_RETIRED) atomic_fetch_add(&p->errors, 1);
        if (out->status != WH_START_FAILED) {
            out->data = "";
            out->len = 0;
        }
        return;
    }
    op_stats *o = stats_op(p->stats, op, op_len);
    uint64_t started = stats_begin(o);
    int status = wh_call(inst, op, op_len, msg, msg_len, ticks);
    stats_end(o, started);
    if (buf_assign(sink, inst->result, inst->result_len) != 0) {
        static const char oom[] = "host out of memory: cannot copy the reply";
        buf_assign(sink, oom, sizeof oom - 1);
        if (status == WH_OK) status = WH_HOST_FAILURE;
    }
    out->data = nonnull(sink->data);
    out->len = sink->len;
    out->status = status;
    out->memory_size = inst->memory_size;
    out->trap_code = inst->trap_code;
    uint64_t size = inst->memory_size;
    int at_cap = size > p->cap_floor || (inst->memory_grew && size > p->cap_half);
    if (status == WH_OK) {
        if (size > p->cap_floor) pool_close(p, inst);
        else pool_release(p, inst);
        return;
    }
    atomic_fetch_add(&p->errors, 1);
    out->at_cap = at_cap;
    if (status == WH_GUEST_ERROR && !at_cap) pool_release(p, inst);
    else pool_close(p, inst);
}

int wh_pool_call(wh_pool *p, const char *op, size_t op_len, const char *msg, size_t msg_len,
                 double budget, wh_result *out) {
    buf_t local = {0};
    pool_call(p, op, op_len, msg, msg_len, budget, &local, out);
    if (out->status == WH_START_FAILED) {
        buf_free(&local);
        return out->status; /* out already points at tls_result */
    }
    /* swap the call's buffer in as this thread's result buffer */
    buf_free(&tls_result);
    tls_result = local;
    out->data = nonnull(tls_result.data);
    out->len = tls_result.len;
    return out->status;
}

void wh_pool_retire(wh_pool *p) {
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->retired, 1); /* before the drain: a later release drains itself */
    pthread_cond_broadcast(&p->cv); /* waiters give up: no instance will come back */
    int empty = pool_now_empty(p);
    pthread_mutex_unlock(&p->mu);
    if (empty) wh_py_pool_empty(p->py_owner);
    slots_drain(p);
}

void wh_pool_info(wh_pool *p, uint64_t out[WH_POOL_INFO]) {
    uint64_t idle = 0;
    for (uint32_t i = 0; i < p->max; i++) idle += atomic_load(&p->slots[i].inst) != NULL;
    pthread_mutex_lock(&p->mu);
    out[0] = p->size;
    out[2] = p->waits;
    pthread_mutex_unlock(&p->mu);
    out[1] = idle < out[0] ? idle : out[0];
    out[3] = atomic_load(&p->errors);
    out[4] = (uint64_t)atomic_load(&p->retired);
    out[5] = out[0] - out[1];
}

wh_stats *wh_pool_stats(wh_pool *p) { return p->stats; }

/* ---- native providers ------------------------------------------------ */

struct wh_native {
    counter_t in_flight[WH_SHARDS]; /* a call enters and leaves on its thread's shard */
    wascc_provider *p;
    _Atomic int stopped;
    wh_stats *stats;
};

wh_native *wh_native_new(wascc_provider *p) {
    wh_native *n = calloc_lines(sizeof *n);
    if (!n) return NULL;
    n->stats = stats_new();
    if (!n->stats) {
        free(n);
        return NULL;
    }
    n->p = p;
    return n;
}

wh_stats *wh_native_stats(wh_native *n) { return n->stats; }

int wh_native_in_flight(wh_native *n) { return (int)counter_sum(n->in_flight); }

/* Enter a call: 0 when the provider takes it, -1 once it has stopped.
 * (Counted before stopped is read, and stop sets stopped before it adds
 * the counts up: either the call sees it stopped, or stop sees the call.) */
static int native_enter(wh_native *n) {
    atomic_fetch_add(&n->in_flight[shard()].n, 1);
    if (atomic_load(&n->stopped)) {
        atomic_fetch_sub(&n->in_flight[shard()].n, 1);
        return -1;
    }
    return 0;
}

static void native_leave(wh_native *n) { atomic_fetch_sub(&n->in_flight[shard()].n, 1); }

/* The replies Python reads (wh_native_call): one buffer per thread. */
static __thread buf_t tls_native;

int32_t wh_native_call(wh_native *n, const char *actor, const char *op,
                       const unsigned char *msg, size_t msg_len, wh_reply *out) {
    out->data = NULL;
    out->len = 0;
    if (native_enter(n) != 0) return WH_NATIVE_STOPPED;
    wh_reply reply;
    int32_t rc = wh_provider_call(n->p, actor, op, msg, msg_len, &reply);
    /* copied and handed back while the call still counts as in flight: the
     * provider may be destroyed the moment it does not */
    if (buf_assign(&tls_native, reply.data, reply.len) != 0) {
        static const char oom[] = "host out of memory: cannot copy the provider's reply";
        buf_assign(&tls_native, oom, sizeof oom - 1);
        rc = WASCC_ERROR;
    }
    wh_provider_free(n->p, reply.data);
    native_leave(n);
    out->data = tls_native.data;
    out->len = tls_native.len;
    return rc;
}


int wh_native_stop(wh_native *n, double timeout) {
    if (atomic_exchange(&n->stopped, 1)) return 1;
    wh_provider_stop(n->p);
    uint64_t until = now_ns() + (uint64_t)(timeout * 1e9);
    struct timespec ms = {0, 1000000};
    while (counter_sum(n->in_flight)) {
        if (now_ns() > until) return 0; /* left undestroyed: never freed under a call */
        nanosleep(&ms, NULL);
    }
    wh_provider_destroy(n->p);
    return 1;
    /* the wh_native itself is never freed, like the library it came from:
     * a stray provider thread or a route read a moment ago may still look */
}

/* ---- the router ------------------------------------------------------ */

enum { RT_ACTOR = 1, RT_ROUTE = 2 };
#define RT_SEP '\x1f'
#define RT_KEY_MAX 1024

typedef struct rt_entry {
    struct rt_entry *next;
    uint64_t hash;
    char *key;
    size_t key_len;
    wh_pool *pool;     /* RT_ACTOR */
    wh_native *native; /* RT_ROUTE: NULL when only the dispatch is allowed */
    int bound;         /* RT_ROUTE: may the provider dispatch to the actor? */
    int codec;         /* RT_ROUTE: WH_CODEC_* of the binding */
} rt_entry;

struct wh_router {
    pthread_rwlock_t lock;
    rt_entry **buckets;
    size_t nbuckets, count;
    void *py_handle;
    _Atomic int python_only;
    _Atomic int draining;
    /* bumped by every write: a thread's cached lookups (below) hold while
     * it has not moved */
    _Atomic uint64_t gen;
};

/* Calls into actors and providers the data plane is running on this thread
 * (a nested dispatch while draining is part of a call, not new work). */
static __thread int route_depth;

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

wh_router *wh_router_new(void *py_handle) {
    wh_router *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->nbuckets = 64;
    r->buckets = calloc(r->nbuckets, sizeof *r->buckets);
    if (!r->buckets) {
        free(r);
        return NULL;
    }
    pthread_rwlock_init(&r->lock, NULL);
    r->py_handle = py_handle;
    return r;
}

static void entry_free(rt_entry *e) {
    if (e->pool) wh_pool_unref(e->pool);
    free(e->key);
    free(e);
}

void wh_router_free(wh_router *r) {
    if (!r) return;
    for (size_t i = 0; i < r->nbuckets; i++) {
        rt_entry *e = r->buckets[i];
        while (e) {
            rt_entry *next = e->next;
            entry_free(e);
            e = next;
        }
    }
    free(r->buckets);
    pthread_rwlock_destroy(&r->lock);
    free(r);
}

void wh_router_flags(wh_router *r, int python_only, int draining) {
    atomic_store(&r->python_only, python_only);
    atomic_store(&r->draining, draining);
}

static rt_entry *rt_find(wh_router *r, const char *key, size_t len, uint64_t h) {
    for (rt_entry *e = r->buckets[h & (r->nbuckets - 1)]; e; e = e->next)
        if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0) return e;
    return NULL;
}

static void rt_grow(wh_router *r) {
    size_t n = r->nbuckets * 2;
    rt_entry **b = calloc(n, sizeof *b);
    if (!b) return; /* stays correct, only slower */
    for (size_t i = 0; i < r->nbuckets; i++) {
        rt_entry *e = r->buckets[i];
        while (e) {
            rt_entry *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(r->buckets);
    r->buckets = b;
    r->nbuckets = n;
}

/* Write lock held: the entry for key (created when `create`), or NULL. */
static rt_entry *rt_slot(wh_router *r, const char *key, size_t len, int create) {
    uint64_t h = fnv(key, len);
    rt_entry *e = rt_find(r, key, len, h);
    if (e || !create) return e;
    e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->key = dup_bytes(key, len);
    if (!e->key) {
        free(e);
        return NULL;
    }
    e->key_len = len;
    e->hash = h;
    if (r->count + 1 > r->nbuckets) rt_grow(r);
    rt_entry **head = &r->buckets[h & (r->nbuckets - 1)];
    e->next = *head;
    *head = e;
    r->count++;
    return e;
}

static void rt_remove(wh_router *r, const char *key, size_t len) {
    uint64_t h = fnv(key, len);
    rt_entry **link = &r->buckets[h & (r->nbuckets - 1)];
    for (rt_entry *e = *link; e; link = &e->next, e = e->next) {
        if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0) {
            *link = e->next;
            r->count--;
            entry_free(e);
            return;
        }
    }
}

static size_t actor_key(char *buf, const char *actor, size_t actor_len) {
    if (actor_len + 1 > RT_KEY_MAX) return 0;
    buf[0] = 'A';
    memcpy(buf + 1, actor, actor_len);
    return actor_len + 1;
}

static size_t route_key(char *buf, const char *actor, size_t actor_len, const char *cap,
                        size_t cap_len, const char *binding, size_t binding_len) {
    if (!binding_len) {
        binding = "default";
        binding_len = 7;
    }
    size_t n = 1 + actor_len + 1 + cap_len + 1 + binding_len;
    if (n > RT_KEY_MAX) return 0;
    char *p = buf;
    *p++ = 'R';
    memcpy(p, actor, actor_len);
    p += actor_len;
    *p++ = RT_SEP;
    memcpy(p, cap, cap_len);
    p += cap_len;
    *p++ = RT_SEP;
    memcpy(p, binding, binding_len);
    return n;
}

int wh_router_actor(wh_router *r, const char *actor, wh_pool *pool) {
    char key[RT_KEY_MAX];
    size_t len = actor_key(key, actor, strlen(actor));
    if (!len) return -1;
    int rc = 0;
    pthread_rwlock_wrlock(&r->lock);
    if (!pool) {
        rt_remove(r, key, len);
    } else {
        rt_entry *e = rt_slot(r, key, len, 1);
        if (!e) {
            rc = -1;
        } else {
            pool_ref(pool);
            if (e->pool) wh_pool_unref(e->pool);
            e->pool = pool;
        }
    }
    atomic_fetch_add(&r->gen, 1);
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

int wh_router_route(wh_router *r, const char *actor, const char *cap, const char *binding,
                    int bound, wh_native *native, int codec) {
    char key[RT_KEY_MAX];
    size_t len = route_key(key, actor, strlen(actor), cap, strlen(cap), binding, strlen(binding));
    if (!len) return -1;
    int rc = 0;
    pthread_rwlock_wrlock(&r->lock);
    if (!bound && !native) {
        rt_remove(r, key, len);
    } else {
        rt_entry *e = rt_slot(r, key, len, 1);
        if (!e) {
            rc = -1;
        } else {
            e->native = native;
            e->bound = bound;
            e->codec = codec;
        }
    }
    atomic_fetch_add(&r->gen, 1);
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

/* The pool of `actor` with a reference taken, or NULL. */
static wh_pool *rt_actor(wh_router *r, const char *actor, size_t actor_len) {
    char key[RT_KEY_MAX];
    size_t len = actor_key(key, actor, actor_len);
    if (!len) return NULL;
    uint64_t h = fnv(key, len);
    pthread_rwlock_rdlock(&r->lock);
    rt_entry *e = rt_find(r, key, len, h);
    wh_pool *p = e ? e->pool : NULL;
    if (p) pool_ref(p);
    pthread_rwlock_unlock(&r->lock);
    return p;
}

/* Tell Python about a failed call it did not see, and get the words the
 * caller receives (the same an all-Python call would have given). */
static void report_failure(wh_router *r, wh_failure *f, buf_t *text) {
    wh_reply words = {NULL, 0};
    wh_py_failed(r->py_handle, f, &words);
    if (words.data) {
        buf_assign(text, words.data, words.len);
        free(words.data);
    } else {
        static const char m[] = "the call failed (and describing why ran out of memory)";
        buf_assign(text, m, sizeof m - 1);
    }
}

/* Call the actor `target` from C; WH_ROUTE_PYTHON when the tables cannot
 * (it is not here, or it was replaced and its successor is not published).
 * The reply or the error words go to `sink`; returns 1 on success, 0 on
 * failure. */
static int route_to_actor(wh_router *r, const char *target, size_t target_len, const char *op,
                          size_t op_len, const char *msg, size_t msg_len, buf_t *sink,
                          wh_pool *borrowed, int to_provider) {
    for (int attempt = 0; attempt < 4; attempt++) {
        /* `borrowed` (first attempt only): the caller holds its reference,
         * so this call takes none (no shared counter on the hot path) */
        wh_pool *p = borrowed;
        int owned = 0;
        borrowed = NULL;
        if (!p) {
            p = rt_actor(r, target, target_len);
            owned = 1;
        }
        if (!p) return WH_ROUTE_PYTHON;
        wh_result res;
        route_depth++;
        pool_call(p, op, op_len, msg, msg_len, 0, sink, &res);
        route_depth--;
        if (res.status == WH_RETIRED) { /* replaced meanwhile: call its successor */
            if (owned) wh_pool_unref(p);
            continue;
        }
        if (res.status != WH_OK) {
            wh_failure f = {0};
            f.kind = WH_FAIL_ACTOR;
            f.to_provider = to_provider;
            f.owner = p->py_owner;
            f.op = op;
            f.op_len = op_len;
            f.status = res.status;
            f.start_status = res.start_status;
            f.data = res.status == WH_START_FAILED ? tls_result.data : sink->data;
            f.len = res.status == WH_START_FAILED ? tls_result.len
                    : (res.status == WH_BUSY ? 0 : sink->len);
            f.at_cap = res.at_cap;
            f.memory_size = res.memory_size;
            report_failure(r, &f, sink);
        }
        if (owned) wh_pool_unref(p);
        return res.status == WH_OK;
    }
    return WH_ROUTE_PYTHON;
}

static int is_request_struct(const char *op, size_t len) {
    return in_lines(request_structs, nrequest_structs, op, len);
}

/* Each thread remembers its last lookups while the tables have not changed
 * (the router's gen): a repeated call takes no lock and reads no shared
 * line but gen.  A native provider is never freed, so a stale pointer is
 * harmless (native_enter refuses a stopped one); a cached pool holds a
 * reference, and is used only by a thread's outermost dispatch, so no
 * nested call can drop it under a running one. */
static __thread struct {
    wh_router *r;
    uint64_t gen;
    size_t len;
    wh_native *native;
    char key[RT_KEY_MAX];
} host_cache;

static __thread struct {
    host_dispatcher *hd;
    uint64_t gen;
    size_t len;
    int bound, codec;
    wh_pool *pool; /* a reference */
    char actor[RT_KEY_MAX];
} dispatch_cache;

/* A thread that ends gives its cached pool back (the key's destructor runs
 * while its thread-local storage is still there). */
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_release(void *unused) {
    (void)unused;
    if (dispatch_cache.pool) wh_pool_unref(dispatch_cache.pool);
    dispatch_cache.pool = NULL;
    dispatch_cache.hd = NULL;
}

static void cache_key_make(void) { pthread_key_create(&cache_key, cache_release); }

static void cache_hold(void) {
    pthread_once(&cache_once, cache_key_make);
    if (!pthread_getspecific(cache_key)) pthread_setspecific(cache_key, &dispatch_cache);
}

static wh_native *cached_native(wh_router *r, const char *key, size_t len) {
    uint64_t gen = atomic_load_explicit(&r->gen, memory_order_acquire);
    if (host_cache.r == r && host_cache.gen == gen && host_cache.len == len &&
        memcmp(host_cache.key, key, len) == 0)
        return host_cache.native;
    uint64_t h = fnv(key, len);
    pthread_rwlock_rdlock(&r->lock);
    gen = atomic_load(&r->gen); /* writers bump it under the write lock */
    rt_entry *e = rt_find(r, key, len, h);
    wh_native *n = e ? e->native : NULL;
    pthread_rwlock_unlock(&r->lock);
    host_cache.r = r;
    host_cache.gen = gen;
    host_cache.len = len;
    host_cache.native = n;
    memcpy(host_cache.key, key, len);
    return n;
}

/* An actor's __host_call, when the tables hold its route: 1 (reply in
 * host_response), 0 (error in host_error), or WH_ROUTE_PYTHON. */
static int route_host_call(state_t *st, const unsigned char *bd, size_t bd_len,
                           const unsigned char *ns, size_t ns_len, const unsigned char *op,
                           size_t op_len, const unsigned char *msg, size_t msg_len) {
    wh_pool *self = st->pool;
    wh_router *r = self->router;
    if (!r || !self->key || atomic_load_explicit(&r->python_only, memory_order_relaxed))
        return WH_ROUTE_PYTHON;
    char opz[256];
    if (op_len >= sizeof opz || memchr(op, 0, op_len)) return WH_ROUTE_PYTHON;
    memcpy(opz, op, op_len);
    opz[op_len] = 0;
    if (ns_len == 56 && ns[0] == 'M') { /* an actor */
        if (!in_lines(self->caps, self->ncaps, (const char *)ns, ns_len)) return WH_ROUTE_PYTHON;
        int rc = route_to_actor(r, (const char *)ns, ns_len, opz, op_len, (const char *)msg,
                                msg_len, &st->host_response, NULL, 0);
        if (rc == 0) { /* the words go to the error buffer */
            buf_assign(&st->host_error, st->host_response.data, st->host_response.len);
            buf_reset(&st->host_response);
        }
        return rc;
    }
    char key[RT_KEY_MAX];
    size_t self_len = strlen(self->key);
    size_t len = route_key(key, self->key, self_len, (const char *)ns, ns_len, (const char *)bd,
                           bd_len);
    if (!len) return WH_ROUTE_PYTHON;
    wh_native *n = cached_native(r, key, len);
    if (!n || native_enter(n) != 0) return WH_ROUTE_PYTHON;
    op_stats *o = stats_op(n->stats, opz, op_len);
    uint64_t started = stats_begin(o);
    wh_reply reply = {NULL, 0};
    route_depth++;
    int32_t rc = wh_provider_call(n->p, self->key, opz, msg, msg_len, &reply);
    route_depth--;
    stats_end(o, started);
    int ok = rc == WASCC_OK;
    if (ok) {
        buf_assign(&st->host_response, reply.data, reply.len);
    } else {
        /* the route's capability and binding, for the words and the metrics */
        const char *cap = key + 1 + self_len + 1;
        const char *sep = memchr(cap, RT_SEP, len - (size_t)(cap - key));
        wh_failure f = {0};
        f.kind = WH_FAIL_PROVIDER;
        f.owner = self->py_host;
        f.capability = cap;
        f.capability_len = (size_t)(sep - cap);
        f.binding = sep + 1;
        f.binding_len = len - (size_t)(sep + 1 - key);
        f.op = opz;
        f.op_len = op_len;
        f.data = reply.data;
        f.len = reply.len;
        f.status = rc;
        report_failure(r, &f, &st->host_error);
    }
    wh_provider_free(n->p, reply.data);
    native_leave(n); /* only now: free_buffer is the provider's too */
    return ok;
}

/* ---- dispatchers ----------------------------------------------------- */


/* The route (actor, hd's capability, hd's binding) and the actor's pool (a
 * reference, or NULL), read under the read lock; *gen is the tables'
 * version they come from.  -1 when the key does not fit. */
static int dispatch_lookup(host_dispatcher *hd, wh_router *r, const char *actor, size_t actor_len,
                           uint64_t *gen, int *bound, int *codec, wh_pool **pool) {
    char key[RT_KEY_MAX], akey[RT_KEY_MAX];
    size_t len = route_key(key, actor, actor_len, hd->capability, hd->capability_len,
                           hd->binding, hd->binding_len);
    size_t alen = actor_key(akey, actor, actor_len);
    if (!len || !alen) return -1;
    uint64_t h = fnv(key, len), ah = fnv(akey, alen);
    pthread_rwlock_rdlock(&r->lock);
    *gen = atomic_load(&r->gen);
    rt_entry *e = rt_find(r, key, len, h);
    *bound = e && e->bound;
    *codec = e ? e->codec : WH_CODEC_NONE;
    rt_entry *a = rt_find(r, akey, alen, ah);
    *pool = a ? a->pool : NULL;
    if (*pool) pool_ref(*pool);
    pthread_rwlock_unlock(&r->lock);
    return 0;
}

static int dispatch_call(wh_router *r, wh_pool *pool, int bound, int codec, const char *actor,
                         size_t actor_len, const char *op, size_t op_len, const uint8_t *msg,
                         size_t msg_len, uint8_t **out, size_t *out_len);

/* A dispatch from a native provider's thread, when the tables hold it:
 * 1 (reply in *out), 0 (error words in *out), or WH_ROUTE_PYTHON. */
static int route_dispatch(host_dispatcher *hd, const char *actor, const char *op,
                          const uint8_t *msg, size_t msg_len, uint8_t **out, size_t *out_len) {
    wh_router *r = hd->router;
    if (!r || !atomic_load_explicit(&hd->active, memory_order_relaxed) ||
        atomic_load_explicit(&r->python_only, memory_order_relaxed))
        return WH_ROUTE_PYTHON;
    if (atomic_load_explicit(&r->draining, memory_order_relaxed) && route_depth == 0)
        return WH_ROUTE_PYTHON; /* Python refuses new work while the host drains */
    size_t actor_len = strlen(actor), op_len = strlen(op);
    if (actor_len + 1 > RT_KEY_MAX) return WH_ROUTE_PYTHON;
    int bound, codec;
    wh_pool *pool;
    if (route_depth == 0) {
        uint64_t gen = atomic_load_explicit(&r->gen, memory_order_acquire);
        if (dispatch_cache.hd != hd || dispatch_cache.gen != gen ||
            dispatch_cache.len != actor_len || memcmp(dispatch_cache.actor, actor, actor_len)) {
            if (dispatch_cache.pool) wh_pool_unref(dispatch_cache.pool);
            dispatch_cache.pool = NULL;
            dispatch_cache.hd = NULL;
            if (dispatch_lookup(hd, r, actor, actor_len, &gen, &dispatch_cache.bound,
                                &dispatch_cache.codec, &dispatch_cache.pool) != 0)
                return WH_ROUTE_PYTHON;
            if (dispatch_cache.pool) cache_hold();
            dispatch_cache.hd = hd;
            dispatch_cache.gen = gen;
            dispatch_cache.len = actor_len;
            memcpy(dispatch_cache.actor, actor, actor_len);
        }
        bound = dispatch_cache.bound;
        codec = dispatch_cache.codec;
        pool = dispatch_cache.pool; /* the cache's reference: nested calls leave it alone */
        return dispatch_call(r, pool, bound, codec, actor, actor_len, op, op_len, msg, msg_len,
                             out, out_len);
    }
    uint64_t gen;
    if (dispatch_lookup(hd, r, actor, actor_len, &gen, &bound, &codec, &pool) != 0)
        return WH_ROUTE_PYTHON;
    int rc = dispatch_call(r, pool, bound, codec, actor, actor_len, op, op_len, msg, msg_len, out,
                           out_len);
    if (pool) wh_pool_unref(pool);
    return rc;
}

static int dispatch_call(wh_router *r, wh_pool *pool, int bound, int codec, const char *actor,
                         size_t actor_len, const char *op, size_t op_len, const uint8_t *msg,
                         size_t msg_len, uint8_t **out, size_t *out_len) {
    if (!bound || !pool) return WH_ROUTE_PYTHON;
    if (codec != WH_CODEC_MAP && is_request_struct(op, op_len)) {
        if (codec != WH_CODEC_NONE || !pool_reads_map(pool, op, op_len)) return WH_ROUTE_PYTHON;
    }
    buf_t sink = {0};
    int rc = route_to_actor(r, actor, actor_len, op, op_len, (const char *)msg, msg_len, &sink,
                            pool, 1);
    if (rc == WH_ROUTE_PYTHON) {
        buf_free(&sink);
        return rc;
    }
    /* hand the buffer over: the provider frees it through dispatch_free */
    if (out) *out = sink.data;
    else free(sink.data);
    if (out_len) *out_len = sink.len;
    return rc;
}

int wh_dispatcher_route(wascc_dispatcher *d, wh_router *router, const char *capability,
                        const char *binding) {
    host_dispatcher *hd = (host_dispatcher *)d;
    char *cap = dup_bytes(capability, strlen(capability));
    char *bd = dup_bytes(binding, strlen(binding));
    if (!cap || !bd) {
        free(cap);
        free(bd);
        return -1;
    }
    /* set once, before the provider is configured (no dispatch can run yet) */
    hd->capability = cap;
    hd->binding = bd;
    hd->capability_len = strlen(cap);
    hd->binding_len = strlen(bd);
    hd->router = router;
    atomic_store(&hd->active, 1);
    return 0;
}

void wh_dispatcher_active(wascc_dispatcher *d, int active) {
    atomic_store(&((host_dispatcher *)d)->active, active);
}

void wh_pool_route(wh_pool *p, wh_router *r) { p->router = r; }
