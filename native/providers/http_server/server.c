/*
 * server.c - one listener of the native wascc:http_server: an epoll set, a
 * pool of worker threads, the connections, their deadlines, eviction at the
 * connection limit, and drain.
 *
 * Threads.  Workers block in epoll_wait on the listener's one epoll set;
 * every socket is registered EPOLLONESHOT, so a ready connection is served
 * by exactly one worker, which reads what arrived, answers every complete
 * request in order (pipelining; the actor call is made right there, no
 * hand-off), writes the answers in one send and re-arms the socket.  A
 * worker takes up to 16 ready connections per epoll_wait and serves them in
 * turn.  As many workers run as there are CPUs (WASCC_HTTP_THREADS to
 * change it): each extra one running costs context switches (measured with
 * a C dispatcher on 2 CPUs, wrk sharing them: 2 workers 216k requests/s and
 * 12k switches/s, 8 workers 117k and 75k/s).  Spare workers (3 per CPU, at
 * least 6) stay parked until one is stuck in a call for more than 2 ms (a
 * slow actor): every 5 ms the sweeper lets one spare run per stuck worker
 * and gives the stuck worker's unserved batch back to epoll, so a slow call
 * holds up only its own connection.  The listening socket is one-shot too:
 * the worker that takes it accepts what is pending and re-arms it.
 *
 * Ownership.  A connection lives in a slot (allocated in pages, never freed
 * before the listener); the epoll key is the slot index and a generation
 * that changes whenever the slot is reused, so a stale event never reaches a
 * new connection.  A slot is WAITING (armed in epoll), ACTIVE (one thread
 * owns it: a worker, the sweeper or an evicting accept) or FREE; state moves
 * under the slot's mutex, and only the owner touches the socket.
 *
 * Time.  The sweeper looks at the waiting connections every 25 ms:
 * an idle one past KEEPALIVE_TIMEOUT is closed; an unfinished request past
 * REQUEST_TIMEOUT (counted from its first byte) gets 408.  Under pressure
 * (3/4 of MAX_CONNECTIONS open) idle connections go after 1 s and request
 * heads must arrive within 2 s: an idle flood or a slowloris cannot hold the
 * server.  At the limit a new connection evicts a waiting one (the longest
 * idle first, then the oldest unfinished request, with 408); when every
 * connection is being served it gets 503 and is closed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hs.h"

#define PAGE_BITS 8
#define PAGE_SIZE (1u << PAGE_BITS)
#define KEY_LISTEN UINT64_MAX
#define KEY_WAKE (UINT64_MAX - 1)
#define TICK_SECONDS 0.005  /* the sweeper looks for stuck workers this often */
#define SWEEP_TICKS 5        /* and at the connections' deadlines every 5 ticks */
#define PRESSURE_IDLE 1.0
#define PRESSURE_HEAD 2.0
#define EVICT_GRACE 0.1
#define LINGER_SECONDS 0.5
#define LINGER_BYTES (1u << 20)
#define READ_CHUNK 16384
#define BATCH 16         /* ready connections a worker takes per epoll_wait */
#define STUCK_SECONDS 0.002 /* a worker in one call this long gives its batch back */

enum { C_FREE, C_WAITING, C_ACTIVE };

typedef struct {
    pthread_mutex_t lock;
    uint32_t gen;
    int state;
    int fd;
    hs_parser parser;
    uint8_t *in;
    size_t in_len, in_cap;
    double deadline, idle_since;
    uint32_t next_free;
} hs_conn;

/* One worker thread and the ready connections it took from epoll in one
 * batch and has not served yet (the sweeper hands them back to epoll when
 * the worker is stuck in a slow call). */
typedef struct {
    hs_listener *l;
    pthread_t thread;
    pthread_mutex_t lock;
    uint64_t keys[BATCH];
    int next, count;
    double since; /* when the connection it serves now was taken; 0: none */
} hs_worker;

struct hs_listener {
    hs_server *srv;
    char actor[128];
    char label[340];
    hs_settings s;
    int lfd, epfd, evfd, port;
    char host[256]; /* the address the socket is bound to, numeric */
    pthread_mutex_t lock;        /* slots, counts, closing */
    pthread_cond_t changed;      /* a connection closed (drain waits for it) */
    pthread_cond_t tick;         /* the sweeper sleeps on it between ticks */
    pthread_mutex_t park_lock;   /* running, quota; parked workers wait on park */
    pthread_cond_t park;
    size_t running, quota, base; /* workers not parked; allowed; one per CPU */
    pthread_mutex_t accept_lock; /* accept() against closing the listening socket */
    hs_conn **pages;
    size_t n_pages, n_used, open, high_water;
    uint32_t free_head; /* UINT32_MAX: none */
    int closing, stopping;
    hs_worker *workers;
    size_t n_workers;
    pthread_t sweeper;
    int sweeper_started;
};

static hs_conn *slot(hs_listener *l, uint32_t i) {
    return &l->pages[i >> PAGE_BITS][i & (PAGE_SIZE - 1)];
}

static uint64_t key_of(uint32_t index, uint32_t gen) { return ((uint64_t)gen << 32) | index; }

/* ---- slots ------------------------------------------------------------------ */

/* A free slot (l->lock held); UINT32_MAX when MAX_CONNECTIONS are open. */
static uint32_t take_slot(hs_listener *l) {
    if (l->open >= l->s.max_connections) return UINT32_MAX;
    uint32_t i;
    if (l->free_head != UINT32_MAX) {
        i = l->free_head;
        l->free_head = slot(l, i)->next_free;
    } else {
        if (l->n_used == l->n_pages * PAGE_SIZE) {
            size_t p = l->n_used >> PAGE_BITS;
            hs_conn *page = calloc(PAGE_SIZE, sizeof *page);
            if (!page) return UINT32_MAX;
            for (size_t k = 0; k < PAGE_SIZE; k++) {
                pthread_mutex_init(&page[k].lock, NULL);
                page[k].fd = -1;
            }
            __atomic_store_n(&l->pages[p], page, __ATOMIC_RELEASE);
            l->n_pages++;
        }
        i = (uint32_t)l->n_used++;
    }
    l->open++;
    return i;
}

/* Close a connection its owner holds (state ACTIVE) and free its slot. */
static void conn_close(hs_listener *l, uint32_t index) {
    hs_conn *c = slot(l, index);
    pthread_mutex_lock(&c->lock);
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->state = C_FREE;
    c->gen++;
    hs_parser_free(&c->parser);
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_lock(&l->lock);
    c->next_free = l->free_head;
    l->free_head = index;
    l->open--;
    pthread_cond_broadcast(&l->changed);
    pthread_mutex_unlock(&l->lock);
}

/* ---- writing ------------------------------------------------------------------ */

/* Send everything, waiting at most REQUEST_TIMEOUT for a slow reader. */
static int send_all(hs_listener *l, int fd, const uint8_t *p, size_t n) {
    double deadline = 0;
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return -1;
        double now = hs_now();
        if (deadline == 0) deadline = now + l->s.request_timeout;
        if (now >= deadline) return -1;
        struct pollfd pfd = {fd, POLLOUT, 0};
        double wait = (deadline - now) * 1000;
        if (poll(&pfd, 1, wait > 1e9 ? 1000000000 : (int)wait + 1) < 0 && errno != EINTR)
            return -1;
    }
    return 0;
}

/* Close our side, then read what the client still sends (so it gets our answer
 * rather than a reset), for at most 0.5 s and 1 MiB. */
static void linger(int fd) {
    shutdown(fd, SHUT_WR);
    double deadline = hs_now() + LINGER_SECONDS;
    size_t read_total = 0;
    char sink[8192];
    while (read_total < LINGER_BYTES) {
        double left = deadline - hs_now();
        if (left <= 0) break;
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        ssize_t k = recv(fd, sink, sizeof sink, 0);
        if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (k <= 0) break;
        read_total += (size_t)k;
    }
}

static void refusal_reply(hs_reply *r, const hs_refusal *why) {
    hs_error_reply(r, why->code, why->text ? why->text : why->detail);
    r->close = 1;
}

/* A connection whose deadline passed while it waited (its owner holds it). */
static void expire(hs_listener *l, uint32_t index) {
    hs_conn *c = slot(l, index);
    if (c->parser.phase != HS_IDLE) {
        hs_reply r;
        hs_error_reply(&r, 408, "the request took too long to arrive");
        hs_buf out = {0};
        hs_render(&out, &r, 0, 0, 0);
        if (send(c->fd, out.p, out.len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) { /* best effort */
        }
        hs_buf_free(&out);
        hs_reply_free(&r);
        hs_count(l->srv, 408);
    }
    conn_close(l, index);
}

/* ---- serving one connection ----------------------------------------------------------- */

enum { KEEP, CLOSE, LINGER };

/* Answer every complete request in the input, in order. */
static int answer(hs_listener *l, hs_conn *c, hs_buf *out) {
    size_t pos = 0;
    int result = KEEP;
    for (;;) {
        hs_refusal why;
        int r = hs_parse(&c->parser, c->in, c->in_len, &pos, hs_now(), &why);
        if (r == HS_MORE) break;
        if (r == HS_REFUSE) {
            hs_reply reply;
            refusal_reply(&reply, &why);
            hs_render(out, &reply, 0, 0, 0);
            hs_reply_free(&reply);
            hs_count(l->srv, why.code);
            result = LINGER;
            break;
        }
        if (__atomic_load_n(&l->closing, __ATOMIC_ACQUIRE)) {
            result = CLOSE;
            break;
        }
        double started = l->s.access_log ? hs_now() : 0;
        hs_reply reply;
        uint8_t *raw = NULL;
        size_t raw_len = 0;
        hs_invoke(l->srv, l->actor, &c->parser.payload, &reply, &raw, &raw_len);
        int keep = c->parser.keep_alive && !c->parser.last && !reply.close &&
                   !__atomic_load_n(&l->closing, __ATOMIC_ACQUIRE);
        hs_render(out, &reply, c->parser.is_head, keep, c->parser.version10);
        hs_count(l->srv, reply.code);
        if (l->s.access_log)
            hs_access(l->srv, l->actor, c->parser.method, &c->parser.path, reply.code,
                      (uint64_t)((hs_now() - started) * 1e6));
        hs_reply_free(&reply);
        hs_release(l->srv, raw);
        int last = c->parser.last;
        hs_parser_next(&c->parser);
        if (!keep) {
            result = last || pos < c->in_len ? LINGER : CLOSE;
            break;
        }
    }
    if (pos) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
    hs_parser *p = &c->parser;
    if (result == KEEP && p->expect_continue && !p->continued && p->phase >= HS_BODY &&
        p->body.len == 0) {
        p->continued = 1;
        hs_buf_puts(out, "HTTP/1.1 100 Continue\r\n\r\n");
    }
    return result;
}

static void serve(hs_listener *l, uint32_t index, hs_buf *out) {
    hs_conn *c = slot(l, index);
    int result = KEEP;
    size_t limit = l->s.max_header_bytes + 2 * READ_CHUNK;
    out->len = 0;
    for (;;) {
        if (c->in_cap - c->in_len < READ_CHUNK / 2 && c->in_cap < limit) {
            size_t cap = c->in_cap ? c->in_cap * 2 : READ_CHUNK;
            if (cap > limit) cap = limit;
            uint8_t *p = realloc(c->in, cap);
            if (!p) {
                result = CLOSE;
                break;
            }
            c->in = p;
            c->in_cap = cap;
        }
        size_t room = c->in_cap - c->in_len;
        ssize_t n = recv(c->fd, c->in + c->in_len, room, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n <= 0) {
            result = CLOSE;
            break;
        }
        c->in_len += (size_t)n;
        result = answer(l, c, out);
        if (result != KEEP || (size_t)n < room) break;
    }
    if (out->len && send_all(l, c->fd, out->p, out->len) != 0) result = CLOSE;
    if (out->cap > (1u << 20)) hs_buf_free(out);
    if (result == LINGER) linger(c->fd);
    if (result != KEEP) {
        conn_close(l, index);
        return;
    }
    double now = hs_now();
    if (c->parser.phase == HS_IDLE) {
        c->idle_since = now;
        c->deadline = now + l->s.keepalive_timeout;
    } else {
        c->deadline = c->parser.began + l->s.request_timeout;
    }
    if (c->in_len == 0 && c->in_cap > READ_CHUNK) { /* a big head is not kept while idle */
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    }
    pthread_mutex_lock(&c->lock);
    if (__atomic_load_n(&l->closing, __ATOMIC_ACQUIRE)) {
        pthread_mutex_unlock(&c->lock);
        conn_close(l, index);
        return;
    }
    c->state = C_WAITING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT,
                             .data.u64 = key_of(index, c->gen)};
    int rc = epoll_ctl(l->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    if (rc != 0) c->state = C_ACTIVE;
    pthread_mutex_unlock(&c->lock);
    if (rc != 0) conn_close(l, index);
}

/* ---- admission --------------------------------------------------------------------- */

/* Lower goes first: idle past the grace (longest idle first), then unfinished
 * requests (oldest first), then connections that only just arrived. */
static void rank(const hs_conn *c, double now, int *cls, double *since) {
    if (c->parser.phase == HS_IDLE) {
        *cls = now - c->idle_since >= EVICT_GRACE ? 0 : 2;
        *since = c->idle_since;
    } else {
        *cls = 1;
        *since = c->parser.began;
    }
}

/* Take a waiting connection out of epoll (its lock held, state WAITING). */
static void take(hs_listener *l, hs_conn *c) {
    c->state = C_ACTIVE;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
}

static int evict_one(hs_listener *l) {
    for (int attempt = 0; attempt < 8; attempt++) {
        double now = hs_now();
        pthread_mutex_lock(&l->lock);
        size_t used = l->n_used;
        pthread_mutex_unlock(&l->lock);
        uint32_t best = UINT32_MAX;
        int best_cls = 3;
        double best_since = INFINITY;
        for (uint32_t i = 0; i < used; i++) {
            hs_conn *c = slot(l, i);
            pthread_mutex_lock(&c->lock);
            if (c->state == C_WAITING) {
                int cls;
                double since;
                rank(c, now, &cls, &since);
                if (cls < best_cls || (cls == best_cls && since < best_since)) {
                    best = i;
                    best_cls = cls;
                    best_since = since;
                }
            }
            pthread_mutex_unlock(&c->lock);
        }
        if (best == UINT32_MAX) return 0;
        hs_conn *v = slot(l, best);
        pthread_mutex_lock(&v->lock);
        if (v->state != C_WAITING) {
            pthread_mutex_unlock(&v->lock);
            continue;
        }
        take(l, v);
        pthread_mutex_unlock(&v->lock);
        expire(l, best);
        return 1;
    }
    return 0;
}

static void refuse_busy(int fd) {
    char sink[8192];
    while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {
    }
    if (send(fd, HS_BUSY, strlen(HS_BUSY), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) { /* best effort */
    }
    shutdown(fd, SHUT_WR);
    close(fd);
}

static void admit(hs_listener *l, int fd) {
    for (int attempt = 0; attempt < 8; attempt++) {
        pthread_mutex_lock(&l->lock);
        uint32_t i = take_slot(l);
        pthread_mutex_unlock(&l->lock);
        if (i != UINT32_MAX) {
            hs_conn *c = slot(l, i);
            double now = hs_now();
            pthread_mutex_lock(&c->lock);
            c->fd = fd;
            hs_parser_init(&c->parser, &l->s);
            c->idle_since = now;
            c->deadline = now + l->s.keepalive_timeout;
            c->state = C_WAITING;
            struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT,
                                     .data.u64 = key_of(i, c->gen)};
            int rc = epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev);
            if (rc != 0) c->state = C_ACTIVE;
            pthread_mutex_unlock(&c->lock);
            if (rc != 0) conn_close(l, i);
            return;
        }
        if (!evict_one(l)) break;
    }
    refuse_busy(fd);
    hs_count(l->srv, 503);
}

static void accept_some(hs_listener *l) {
    pthread_mutex_lock(&l->accept_lock);
    for (int k = 0; k < 64 && l->lfd >= 0; k++) {
        int fd = accept4(l->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            break;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        admit(l, fd);
    }
    if (l->lfd >= 0) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = KEY_LISTEN};
        epoll_ctl(l->epfd, EPOLL_CTL_MOD, l->lfd, &ev);
    }
    pthread_mutex_unlock(&l->accept_lock);
}

/* Workers that run at once: WASCC_HTTP_THREADS, else one per CPU the
 * calling thread may run on (read again every 25 ms by the sweeper). */
static size_t active_workers(void) {
    const char *env = getenv("WASCC_HTTP_THREADS");
    if (env && *env) {
        long n = strtol(env, NULL, 10);
        if (n >= 1 && n <= 256) return (size_t)n;
    }
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return (size_t)CPU_COUNT(&set);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus < 1 ? 1 : (size_t)cpus;
}

/* ---- threads ------------------------------------------------------------------------ */

/* Take a waiting connection to serve it (its epoll event fired). */
static int claim(hs_listener *l, uint64_t key) {
    /* the slot's page was allocated before its key was ever registered */
    hs_conn *c = slot(l, (uint32_t)key);
    pthread_mutex_lock(&c->lock);
    int mine = c->gen == (uint32_t)(key >> 32) && c->state == C_WAITING;
    if (mine) c->state = C_ACTIVE;
    pthread_mutex_unlock(&c->lock);
    return mine;
}

/* Arm again connections whose event fired but which nobody served: another
 * worker picks them up (or the sweeper's deadlines apply). */
static void give_back(hs_listener *l, const uint64_t *keys, int n) {
    for (int i = 0; i < n; i++) {
        hs_conn *c = slot(l, (uint32_t)keys[i]);
        pthread_mutex_lock(&c->lock);
        if (c->gen == (uint32_t)(keys[i] >> 32) && c->state == C_WAITING) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = keys[i]};
            epoll_ctl(l->epfd, EPOLL_CTL_MOD, c->fd, &ev);
        }
        pthread_mutex_unlock(&c->lock);
    }
}

static void *worker(void *arg) {
    hs_worker *w = arg;
    hs_listener *l = w->l;
    hs_buf out = {0};
    struct epoll_event evs[BATCH];
    for (;;) {
        pthread_mutex_lock(&l->park_lock);
        while (l->running > l->quota && !__atomic_load_n(&l->stopping, __ATOMIC_ACQUIRE)) {
            l->running--;
            pthread_cond_wait(&l->park, &l->park_lock);
            l->running++;
        }
        pthread_mutex_unlock(&l->park_lock);
        int n = epoll_wait(l->epfd, evs, BATCH, -1);
        if (__atomic_load_n(&l->stopping, __ATOMIC_ACQUIRE)) break;
        if (n <= 0) continue;
        int count = 0, accept_now = 0;
        pthread_mutex_lock(&w->lock);
        for (int i = 0; i < n; i++) {
            uint64_t key = evs[i].data.u64;
            if (key == KEY_LISTEN) accept_now = 1;
            else if (key != KEY_WAKE) w->keys[count++] = key;
        }
        w->next = 0;
        w->count = count;
        pthread_mutex_unlock(&w->lock);
        if (accept_now) accept_some(l);
        for (;;) {
            pthread_mutex_lock(&w->lock);
            if (w->next >= w->count) {
                w->since = 0;
                pthread_mutex_unlock(&w->lock);
                break;
            }
            uint64_t key = w->keys[w->next++];
            w->since = hs_now();
            pthread_mutex_unlock(&w->lock);
            if (claim(l, key)) serve(l, (uint32_t)key, &out);
        }
    }
    /* stopping: what this worker took and did not serve is closed with the listener */
    hs_buf_free(&out);
    return NULL;
}

/* Give back the batch of every worker stuck in one call (a slow actor), and
 * let one parked worker run for each stuck one. */
static void unstick(hs_listener *l, double now) {
    size_t stuck = 0;
    for (size_t i = 0; i < l->n_workers; i++) {
        hs_worker *w = &l->workers[i];
        uint64_t keys[BATCH];
        int n = 0;
        pthread_mutex_lock(&w->lock);
        if (w->since && now - w->since > STUCK_SECONDS) {
            stuck++;
            if (w->next < w->count) {
                n = w->count - w->next;
                memcpy(keys, w->keys + w->next, (size_t)n * sizeof *keys);
                w->count = w->next;
            }
        }
        pthread_mutex_unlock(&w->lock);
        if (n) give_back(l, keys, n);
    }
    pthread_mutex_lock(&l->park_lock);
    l->quota = l->base + stuck;
    for (size_t k = l->running; k < l->quota; k++) pthread_cond_signal(&l->park);
    pthread_mutex_unlock(&l->park_lock);
}

static void sweep(hs_listener *l, double now) {
    pthread_mutex_lock(&l->lock);
    size_t used = l->n_used;
    int pressure = l->open >= l->high_water;
    pthread_mutex_unlock(&l->lock);
    for (uint32_t i = 0; i < used; i++) {
        hs_conn *c = slot(l, i);
        pthread_mutex_lock(&c->lock);
        int late = 0;
        if (c->state == C_WAITING) {
            double due = c->deadline;
            if (pressure && c->parser.phase == HS_IDLE)
                due = fmin(due, c->idle_since + PRESSURE_IDLE);
            else if (pressure && c->parser.phase == HS_HEAD)
                due = fmin(due, c->parser.began + PRESSURE_HEAD);
            if (due < now) {
                take(l, c);
                late = 1;
            }
        }
        pthread_mutex_unlock(&c->lock);
        if (late) expire(l, i);
    }
}

static void *sweeper(void *arg) {
    hs_listener *l = arg;
    for (unsigned ticks = 1;; ticks++) {
        pthread_mutex_lock(&l->lock);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)(TICK_SECONDS * 1e9);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (!l->stopping) pthread_cond_timedwait(&l->tick, &l->lock, &ts);
        int stopping = l->stopping;
        pthread_mutex_unlock(&l->lock);
        if (stopping) break;
        double now = hs_now();
        if (ticks % SWEEP_TICKS == 0) {
            size_t base = active_workers(); /* the CPUs we may use can change (taskset) */
            pthread_mutex_lock(&l->park_lock);
            l->base = base;
            pthread_mutex_unlock(&l->park_lock);
        }
        unstick(l, now);
        if (ticks % SWEEP_TICKS == 0) sweep(l, now);
    }
    return NULL;
}

/* ---- the listener's life ------------------------------------------------------------- */

static void format_where(const hs_settings *s, int port, char *out, size_t n) {
    if (strchr(s->address, ':')) snprintf(out, n, "[%s]:%d", s->address, port);
    else snprintf(out, n, "%s:%d", s->address, port);
}

static int open_socket(const hs_settings *s, const char *actor, char *err, size_t err_len) {
    char where[300], port[16];
    format_where(s, s->port, where, sizeof where);
    snprintf(port, sizeof port, "%d", s->port);
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int g = getaddrinfo(s->address, port, &hints, &ai);
    if (g != 0) {
        snprintf(err, err_len, "%s: cannot listen on %s for actor %s: bad address (%s)",
                 HS_CAPABILITY, where, actor, gai_strerror(g));
        return -1;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
    if (fd < 0) {
        snprintf(err, err_len, "%s: cannot listen on %s for actor %s: %s", HS_CAPABILITY, where,
                 actor, strerror(errno));
        freeaddrinfo(ai);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        int e = errno;
        snprintf(err, err_len, "%s: cannot listen on %s for actor %s: %s", HS_CAPABILITY, where,
                 actor, e == EADDRINUSE ? "address already in use" : strerror(e));
        close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static void destroy(hs_listener *l) {
    for (size_t p = 0; p < l->n_pages; p++) {
        for (size_t k = 0; k < PAGE_SIZE; k++) {
            hs_conn *c = &l->pages[p][k];
            if (c->fd >= 0) close(c->fd);
            hs_parser_free(&c->parser);
            free(c->in);
            pthread_mutex_destroy(&c->lock);
        }
        free(l->pages[p]);
    }
    free(l->pages);
    free(l->workers);
    if (l->epfd >= 0) close(l->epfd);
    if (l->evfd >= 0) close(l->evfd);
    if (l->lfd >= 0) close(l->lfd);
    pthread_mutex_destroy(&l->lock);
    pthread_mutex_destroy(&l->accept_lock);
    pthread_cond_destroy(&l->changed);
    pthread_cond_destroy(&l->tick);
    pthread_mutex_destroy(&l->park_lock);
    pthread_cond_destroy(&l->park);
    free(l);
}

static void stop_threads(hs_listener *l) {
    pthread_mutex_lock(&l->lock);
    __atomic_store_n(&l->stopping, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&l->tick);
    pthread_mutex_unlock(&l->lock);
    pthread_mutex_lock(&l->park_lock);
    pthread_cond_broadcast(&l->park);
    pthread_mutex_unlock(&l->park_lock);
    uint64_t one = 1;
    if (write(l->evfd, &one, sizeof one) < 0) { /* the eventfd cannot be full */
    }
    for (size_t i = 0; i < l->n_workers; i++) {
        pthread_join(l->workers[i].thread, NULL);
        pthread_mutex_destroy(&l->workers[i].lock);
    }
    if (l->sweeper_started) pthread_join(l->sweeper, NULL);
}

hs_listener *hs_listener_start(hs_server *srv, const char *actor, const hs_settings *s,
                               int inherit_fd, char *err, size_t err_len) {
    hs_listener *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, err_len, "%s: out of memory", HS_CAPABILITY);
        if (inherit_fd >= 0) close(inherit_fd);
        return NULL;
    }
    l->srv = srv;
    l->s = *s;
    snprintf(l->actor, sizeof l->actor, "%s", actor);
    l->lfd = l->epfd = l->evfd = -1;
    l->free_head = UINT32_MAX;
    l->high_water = (size_t)((double)s->max_connections * 0.75);
    if (l->high_water < 1) l->high_water = 1;
    pthread_mutex_init(&l->lock, NULL);
    pthread_mutex_init(&l->accept_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->changed, &ca);
    pthread_cond_init(&l->tick, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&l->park_lock, NULL);
    pthread_cond_init(&l->park, NULL);
    size_t pages = (s->max_connections + PAGE_SIZE - 1) / PAGE_SIZE;
    l->pages = calloc(pages ? pages : 1, sizeof *l->pages);
    l->lfd = inherit_fd >= 0 ? inherit_fd : open_socket(s, actor, err, err_len);
    if (!l->pages || l->lfd < 0) {
        if (!l->pages) snprintf(err, err_len, "%s: out of memory", HS_CAPABILITY);
        destroy(l);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    snprintf(l->host, sizeof l->host, "%s", s->address);
    if (getsockname(l->lfd, (struct sockaddr *)&ss, &sl) == 0) {
        int six = ss.ss_family == AF_INET6;
        l->port = ntohs(six ? ((struct sockaddr_in6 *)&ss)->sin6_port
                            : ((struct sockaddr_in *)&ss)->sin_port);
        inet_ntop(ss.ss_family,
                  six ? (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                      : (void *)&((struct sockaddr_in *)&ss)->sin_addr,
                  l->host, sizeof l->host);
    }
    char where[300];
    format_where(s, l->port, where, sizeof where);
    snprintf(l->label, sizeof l->label, "%s %s", HS_CAPABILITY, where);
    int flags = fcntl(l->lfd, F_GETFL);
    fcntl(l->lfd, F_SETFL, flags | O_NONBLOCK);
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event lev = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = KEY_LISTEN};
    struct epoll_event wev = {.events = EPOLLIN, .data.u64 = KEY_WAKE};
    if (l->epfd < 0 || l->evfd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->lfd, &lev) != 0 ||
        epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &wev) != 0) {
        snprintf(err, err_len, "%s: cannot listen on %s for actor %s: %s", HS_CAPABILITY, where,
                 actor, strerror(errno));
        destroy(l);
        return NULL;
    }
    l->base = active_workers();
    size_t spare = 3 * l->base < 6 ? 6 : 3 * l->base;
    size_t want = l->base + spare; /* the spares run only for workers stuck in slow calls */
    l->quota = l->base;
    l->running = want;
    l->workers = calloc(want, sizeof *l->workers);
    if (!l->workers) {
        snprintf(err, err_len, "%s: out of memory", HS_CAPABILITY);
        destroy(l);
        return NULL;
    }
    for (size_t i = 0; i < want; i++) {
        hs_worker *w = &l->workers[i];
        w->l = l;
        pthread_mutex_init(&w->lock, NULL);
        if (pthread_create(&w->thread, NULL, worker, w) != 0) {
            pthread_mutex_destroy(&w->lock);
            break;
        }
        l->n_workers++;
    }
    pthread_mutex_lock(&l->park_lock);
    l->running -= want - l->n_workers; /* the threads that could not be made */
    pthread_mutex_unlock(&l->park_lock);
    if (l->n_workers == 0 || pthread_create(&l->sweeper, NULL, sweeper, l) != 0) {
        snprintf(err, err_len, "%s: cannot start the threads of %s", HS_CAPABILITY, where);
        stop_threads(l);
        destroy(l);
        return NULL;
    }
    l->sweeper_started = 1;
    return l;
}

void hs_listener_begin_close(hs_listener *l) {
    pthread_mutex_lock(&l->lock);
    int already = l->closing;
    __atomic_store_n(&l->closing, 1, __ATOMIC_RELEASE);
    size_t used = l->n_used;
    pthread_mutex_unlock(&l->lock);
    if (already) return;
    pthread_mutex_lock(&l->accept_lock);
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, l->lfd, NULL);
    close(l->lfd);
    l->lfd = -1;
    pthread_mutex_unlock(&l->accept_lock);
    for (uint32_t i = 0; i < used; i++) { /* idle connections close now */
        hs_conn *c = slot(l, i);
        pthread_mutex_lock(&c->lock);
        int idle = c->state == C_WAITING;
        if (idle) take(l, c);
        pthread_mutex_unlock(&c->lock);
        if (idle) conn_close(l, i);
    }
}

void hs_listener_finish_close(hs_listener *l, double deadline) {
    pthread_mutex_lock(&l->lock);
    while (l->open > 0) {
        double left = deadline - hs_now();
        if (left <= 0) break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double until = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + fmin(left, 0.05);
        ts.tv_sec = (time_t)until;
        ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
        pthread_cond_timedwait(&l->changed, &l->lock, &ts);
    }
    size_t left = l->open, used = l->n_used;
    pthread_mutex_unlock(&l->lock);
    if (left) {
        fprintf(stderr, "%s: %zu connection(s) still busy after %gs; closing them\n", l->label,
                left, l->s.drain_timeout);
        for (uint32_t i = 0; i < used; i++) {
            hs_conn *c = slot(l, i);
            pthread_mutex_lock(&c->lock);
            if (c->state != C_FREE && c->fd >= 0) shutdown(c->fd, SHUT_RDWR);
            pthread_mutex_unlock(&c->lock);
        }
    }
    stop_threads(l);
    destroy(l);
}

void hs_listener_close(hs_listener *l) {
    hs_listener_begin_close(l);
    hs_listener_finish_close(l, hs_now() + l->s.drain_timeout);
}

const hs_settings *hs_listener_settings(const hs_listener *l) { return &l->s; }
int hs_listener_fd(const hs_listener *l) { return l->lfd; }
int hs_listener_port(const hs_listener *l) { return l->port; }
const char *hs_listener_host(const hs_listener *l) { return l->host; }

size_t hs_listener_connections(hs_listener *l) {
    pthread_mutex_lock(&l->lock);
    size_t n = l->open;
    pthread_mutex_unlock(&l->lock);
    return n;
}

int hs_listener_alive(hs_listener *l) { return l->n_workers > 0 && l->sweeper_started; }
