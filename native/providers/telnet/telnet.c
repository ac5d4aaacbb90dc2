/*
 * telnet.c - wascc:telnet, a native capability provider: a TCP line server
 * with one listener per bound actor and one session per connection.
 *
 * Operations:
 *   provider -> actor  SessionStarted {session: str}        after the MOTD is written
 *   provider -> actor  ReceiveText    {session: str, text: str}  one per line
 *   actor -> provider  SendText       {session: str, text: str}  -> empty reply
 *
 * Binding configuration (CapabilityConfiguration values, read at BindActor):
 *   PORT          required; the TCP port to listen on, 1-65535.
 *   ADDR          optional; the IP address to listen on (IPv4 or IPv6
 *                 literal, or "localhost"), default 127.0.0.1.  Nothing
 *                 listens on all interfaces unless ADDR says 0.0.0.0 or ::.
 *   MOTD          optional; a path to a regular file (at most 64 KiB) whose
 *                 text greets each session.  Read once, at BindActor; bare
 *                 LF line ends are sent as CR LF.
 *   MAX_SESSIONS  optional; open sessions allowed at once for this actor
 *                 (default 1024).  A connection over the limit is told
 *                 "too many sessions" and closed.
 *   A PORT that is missing or invalid, an ADDR that is not an address, an
 *   unreadable MOTD, or a port that cannot be listened on (e.g. in use)
 *   fails BindActor with a message that names the value.  SO_REUSEADDR is
 *   set.  Binding a bound actor again with the same values succeeds and
 *   changes nothing; with other values it is a reconfiguration (provider.h,
 *   section 2): the new listener is opened (or, on the same ADDR and PORT,
 *   the listening socket is taken over) and started first, then the old
 *   listener and its sessions are closed; if the new values fail, the old
 *   listener keeps serving and BindActor fails.  RemoveActor closes the
 *   actor's listener and sessions and joins their threads; connecting then
 *   is refused.
 *
 * Sessions: each connection gets a UUIDv4 session id and a thread.  The
 * MOTD is written, then SessionStarted is dispatched from that thread.  The
 * actor's answers to SessionStarted and ReceiveText, errors included, are
 * ignored: the session goes on.
 *
 * Input (client -> ReceiveText):
 *   - A line ends at LF, CR LF, CR NUL or a bare CR; `text` is the line
 *     without its end.  Empty lines are dispatched too.
 *   - Telnet commands (IAC ...) are removed; IAC IAC is a 0xFF data byte.
 *     The provider enables no option: DO is answered WONT, WILL is answered
 *     DONT.  Subnegotiations (IAC SB ... IAC SE) are dropped.
 *   - BS and DEL erase the previous character of the line; other control
 *     characters except TAB are dropped.
 *   - A line longer than 4096 bytes, or a line that is not well-formed
 *     UTF-8 (binary data), closes the session after a one-line notice
 *     ("wascc:telnet: closing the session: <why>").
 *   - Lines of one session are dispatched one at a time, in order; the
 *     session reads nothing more while the actor handles a line.
 *
 * Output (SendText -> client):
 *   - The text is written as given: no newline or CR is added (as in the
 *     original waSCC telnet provider: send "\r\n" yourself).  0xFF bytes are
 *     doubled (telnet IAC escaping); valid UTF-8 never contains one.
 *   - SendText never blocks: what the socket does not take at once is
 *     queued and written by the session's thread.  More than 1 MiB queued
 *     means the client is not reading: that SendText fails and the session
 *     is closed.  Writes to one session are serialized.
 *   - SendText to a session id that is unknown, closed, or belongs to
 *     another actor fails with an error naming the session.
 *
 * A client that half-closes its connection still gets queued output for up
 * to 2 s.  stop closes every listener and session and joins every thread
 * before returning; the dispatcher is never called after that.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

#include "telnet.h"
#include "wpu.h"

__thread tn_state *tn_current;

static const wpu_operation OPERATIONS[] = {
    {"SessionStarted", 0, "a client connected: {session} (after the MOTD was written)"},
    {"ReceiveText", 0, "a line from a client: {session, text}, without its line end"},
    {"SendText", 1, "write {session, text} to that session as given (no newline added)"},
};

static const wpu_descriptor_t DESCRIPTOR = {
    .id = TN_CAPABILITY,
    .name = "wascc native telnet provider",
    .version = "0.1.0",
    .revision = 1,
    .long_description = "A TCP line server: one listener per bound actor (PORT, ADDR "
                        "default 127.0.0.1, MOTD), one UUIDv4 session per connection",
    .operations = OPERATIONS,
    .n_operations = sizeof OPERATIONS / sizeof OPERATIONS[0],
};

/* ---- wakeups ------------------------------------------------------------ */

int tn_wake_open(tn_wake *w) {
#ifdef __linux__
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) return -1;
    w->rd = w->wr = fd;
#else
    int p[2];
    if (pipe(p) != 0) return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
    }
    w->rd = p[0];
    w->wr = p[1];
#endif
    return 0;
}

void tn_wake_signal(const tn_wake *w) {
#ifdef __linux__
    uint64_t one = 1;
    ssize_t n = write(w->wr, &one, sizeof one);
#else
    uint8_t one = 1;
    ssize_t n = write(w->wr, &one, 1);
#endif
    (void)n; /* full: a wakeup is already pending */
}

void tn_wake_drain(const tn_wake *w) {
    uint8_t buf[64];
    while (read(w->rd, buf, sizeof buf) > 0) {
    }
}

void tn_wake_close(tn_wake *w) {
    if (w->rd >= 0) close(w->rd);
    if (w->wr >= 0 && w->wr != w->rd) close(w->wr);
    w->rd = w->wr = -1;
}

/* Starts a thread with every signal blocked: they belong to the host. */
static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* ---- listeners ---------------------------------------------------------- */

static void reap(tn_listener *l, int all) {
    /* Unlink finished sessions (or all of them) under the lock; join outside. */
    pthread_mutex_lock(&l->lock);
    tn_session *dead = NULL;
    for (tn_session **pp = &l->sessions; *pp;) {
        tn_session *s = *pp;
        if (all || s->done) {
            *pp = s->next;
            s->next = dead;
            dead = s;
            l->n_sessions--;
        } else {
            pp = &s->next;
        }
    }
    pthread_mutex_unlock(&l->lock);
    while (dead) {
        tn_session *s = dead;
        dead = s->next;
        pthread_join(s->thread, NULL);
        tn_session_free(s);
    }
}

static void accept_one(tn_listener *l, int *backoff) {
    int fd;
#ifdef __linux__
    fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
    fd = accept(l->fd, NULL, NULL);
    if (fd >= 0) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
#endif
    if (fd < 0) {
        /* out of descriptors or memory: wait a little instead of spinning */
        *backoff = errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM;
        return;
    }
    *backoff = 0;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
#ifdef SO_NOSIGPIPE
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
    tn_session *s = calloc(1, sizeof *s);
    if (!s) {
        close(fd);
        return;
    }
    s->fd = fd;
    s->owner = l;
    s->wake.rd = s->wake.wr = -1;
    if (wpu_uuid4(s->id) != 0 || tn_wake_open(&s->wake) != 0) {
        tn_session_free(s);
        return;
    }
    pthread_mutex_lock(&l->lock);
    const char *refuse = NULL;
    if (l->closing)
        refuse = "";
    else if (l->n_sessions >= l->max_sessions)
        refuse = "\r\n" TN_CAPABILITY ": too many sessions, try again later\r\n";
    else if (start_thread(&s->thread, tn_session_main, s) != 0)
        refuse = "\r\n" TN_CAPABILITY ": cannot start a session now\r\n";
    if (!refuse) {
        s->next = l->sessions;
        l->sessions = s;
        l->n_sessions++;
    }
    pthread_mutex_unlock(&l->lock);
    if (refuse) {
        if (*refuse) send(fd, refuse, strlen(refuse), MSG_DONTWAIT | MSG_NOSIGNAL);
        tn_session_free(s);
    }
}

static void *listener_main(void *arg) {
    tn_listener *l = arg;
    tn_current = l->state;
    int backoff = 0;
    for (;;) {
        struct pollfd p[2] = {
            {.fd = l->fd, .events = POLLIN},
            {.fd = l->wake.rd, .events = POLLIN},
        };
        int n = poll(p, 2, backoff ? 100 : -1);
        if (n < 0 && errno != EINTR) backoff = 1;
        if (n > 0 && p[1].revents) tn_wake_drain(&l->wake);
        reap(l, 0);
        pthread_mutex_lock(&l->lock);
        int closing = l->closing;
        pthread_mutex_unlock(&l->lock);
        if (closing) break;
        if (n > 0 && (p[0].revents & POLLIN)) accept_one(l, &backoff);
    }
    return NULL;
}

static void listener_free(tn_listener *l) {
    if (l->fd >= 0) close(l->fd);
    tn_wake_close(&l->wake);
    pthread_mutex_destroy(&l->lock);
    free(l->motd);
    free(l->where);
    free(l->config);
    free(l->actor);
    free(l);
}

/* Phase 1 of closing: tell the listener and every session to stop. */
static void listener_signal_close(tn_listener *l) {
    pthread_mutex_lock(&l->lock);
    l->closing = 1;
    for (tn_session *s = l->sessions; s; s = s->next) tn_session_close(s);
    pthread_mutex_unlock(&l->lock);
    tn_wake_signal(&l->wake);
}

/* Phase 2: join the listener, then every session (some may be finishing a
 * dispatch into the actor), close their sockets and free everything. */
static void listener_join_free(tn_listener *l) {
    pthread_join(l->thread, NULL);
    close(l->fd); /* connecting is refused from here on */
    l->fd = -1;
    reap(l, 1);
    listener_free(l);
}

/* The MOTD file as it is sent: LF -> CR LF, 0xFF doubled. */
static int read_motd(const char *path, tn_listener *l, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open MOTD %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "MOTD %s is not a regular file", path);
        close(fd);
        return -1;
    }
    if (st.st_size > TN_MAX_MOTD) {
        snprintf(err, errlen, "MOTD %s is larger than %d bytes", path, TN_MAX_MOTD);
        close(fd);
        return -1;
    }
    uint8_t *raw = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (raw && got < (size_t)st.st_size) {
        ssize_t n = read(fd, raw + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd);
    uint8_t *text = raw ? malloc(2 * got + 1) : NULL;
    if (!text) {
        free(raw);
        snprintf(err, errlen, "cannot read MOTD %s: out of memory", path);
        return -1;
    }
    size_t m = 0;
    for (size_t i = 0; i < got; i++) {
        if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r')) text[m++] = '\r';
        text[m++] = raw[i];
        if (raw[i] == 0xff) text[m++] = 0xff;
    }
    free(raw);
    l->motd = text;
    l->motd_len = m;
    return 0;
}

static int parse_number(const char *text, long min, long max, long *out) {
    char *end;
    if (!text || !*text) return -1;
    errno = 0;
    long v = strtol(text, &end, 10);
    while (*end == ' ') end++;
    if (errno || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

/* Opens the listening socket; 0, or -1 with err set. */
static int open_listener(tn_listener *l, const char *addr, long port, char *err,
                         size_t errlen) {
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    char service[16];
    snprintf(service, sizeof service, "%ld", port);
    int rc = getaddrinfo(addr, service, &hints, &ai);
    if (rc != 0 || !ai) {
        snprintf(err, errlen, "ADDR %s is not an IP address (%s)", addr, gai_strerror(rc));
        return -1;
    }
#ifdef SOCK_CLOEXEC
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
#else
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd >= 0) fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: socket: %s", l->where, strerror(errno));
        freeaddrinfo(ai);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        snprintf(err, errlen, "cannot listen on %s (PORT %ld): %s", l->where, port,
                 strerror(e));
        close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    l->fd = fd;
    return 0;
}

static tn_listener *find_listener(tn_state *st, const char *actor) {
    for (tn_listener *l = st->listeners; l; l = l->next)
        if (strcmp(l->actor, actor) == 0) return l;
    return NULL;
}

/* ---- core operations ---------------------------------------------------- */

static int32_t bind_actor(void *state, const wpu_config *cfg, uint8_t **out,
                          size_t *out_len) {
    tn_state *st = state;
    if (tn_current == st)
        return wpu_error(out, out_len, "BindActor: not from the provider's own threads");
    char err[512] = "";
    long port = 0, max_sessions = TN_DEFAULT_MAX_SESSIONS;
    const char *port_text = wpu_config_get(cfg, "PORT");
    const char *addr = wpu_config_get(cfg, "ADDR");
    const char *motd = wpu_config_get(cfg, "MOTD");
    const char *max_text = wpu_config_get(cfg, "MAX_SESSIONS");
    if (!addr || !*addr || strcmp(addr, "localhost") == 0) addr = "127.0.0.1";
    if (!port_text)
        snprintf(err, sizeof err, "PORT is required (the TCP port to listen on)");
    else if (parse_number(port_text, 1, 65535, &port) != 0)
        snprintf(err, sizeof err, "PORT %s is not a port number (1-65535)", port_text);
    else if (max_text && *max_text && parse_number(max_text, 1, 1000000, &max_sessions) != 0)
        snprintf(err, sizeof err, "MAX_SESSIONS %s is not a positive number", max_text);

    /* What identifies this configuration, and where it listens. */
    size_t cl = strlen(addr) + (port_text ? strlen(port_text) : 0) + (motd ? strlen(motd) : 0) +
                (max_text ? strlen(max_text) : 0) + 64;
    size_t wl = strlen(addr) + 24;
    char *config = malloc(cl), *where = malloc(wl);
    if (config)
        snprintf(config, cl, "PORT=%s ADDR=%s MOTD=%s MAX_SESSIONS=%s",
                 port_text ? port_text : "", addr, motd ? motd : "", max_text ? max_text : "");
    if (where) snprintf(where, wl, strchr(addr, ':') ? "[%s]:%ld" : "%s:%ld", addr, port);

    tn_listener *l = NULL;
    int32_t rc;
    pthread_mutex_lock(&st->admin);
    pthread_mutex_lock(&st->lock);
    int stopped = st->stopped;
    tn_listener *old = find_listener(st, cfg->module);
    pthread_mutex_unlock(&st->lock);
    if (stopped) {
        rc = wpu_error(out, out_len, "BindActor: the telnet provider is stopped");
        goto done;
    }
    if (old && config && strcmp(old->config, config) == 0) { /* the same values: idempotent */
        rc = wpu_empty(out, out_len);
        goto done;
    }
    /* A first bind, or a reconfiguration (provider.h section 2): the new listener is
     * made first; the old one is closed only once the new one runs. */
    if (*err) goto failed;
    l = calloc(1, sizeof *l);
    if (!l || !config || !where || !(l->actor = strdup(cfg->module))) {
        snprintf(err, sizeof err, "out of memory");
        goto failed;
    }
    l->state = st;
    l->fd = -1;
    l->wake.rd = l->wake.wr = -1;
    l->max_sessions = (size_t)max_sessions;
    l->where = where;
    l->config = config;
    where = config = NULL;
    pthread_mutex_init(&l->lock, NULL);
    if (motd && *motd && read_motd(motd, l, err, sizeof err) != 0) goto failed;
    if (old && strcmp(old->where, l->where) == 0) {
        /* the same address and port: take the listening socket over */
        l->fd = fcntl(old->fd, F_DUPFD_CLOEXEC, 0);
        if (l->fd < 0) {
            snprintf(err, sizeof err, "cannot take over %s: %s", l->where, strerror(errno));
            goto failed;
        }
    } else if (open_listener(l, addr, port, err, sizeof err) != 0) {
        goto failed;
    }
    if (tn_wake_open(&l->wake) != 0) {
        snprintf(err, sizeof err, "cannot create a wakeup descriptor: %s", strerror(errno));
        goto failed;
    }
    if (start_thread(&l->thread, listener_main, l) != 0) {
        snprintf(err, sizeof err, "cannot start the listener thread");
        goto failed;
    }
    pthread_mutex_lock(&st->lock);
    l->next = st->listeners;
    st->listeners = l;
    if (old) {
        for (tn_listener **pp = &l->next; *pp; pp = &(*pp)->next) {
            if (*pp == old) {
                *pp = old->next;
                break;
            }
        }
    }
    pthread_mutex_unlock(&st->lock);
    if (old) { /* the new listener runs: now release the old one and its sessions */
        listener_signal_close(old);
        listener_join_free(old);
    }
    rc = wpu_empty(out, out_len);
    goto done;
failed:
    rc = wpu_error(out, out_len, "BindActor %s: %s", cfg->module, err);
    if (l) {
        if (!l->actor) {
            free(l);
        } else {
            listener_free(l);
        }
    }
done:
    pthread_mutex_unlock(&st->admin);
    free(config);
    free(where);
    return rc;
}

static int32_t remove_actor(void *state, const wpu_config *cfg, uint8_t **out,
                            size_t *out_len) {
    tn_state *st = state;
    if (tn_current == st) /* it would join the calling thread */
        return wpu_error(out, out_len, "RemoveActor: not from the provider's own threads");
    pthread_mutex_lock(&st->admin);
    pthread_mutex_lock(&st->lock);
    tn_listener *l = NULL;
    for (tn_listener **pp = &st->listeners; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->actor, cfg->module) == 0) {
            l = *pp;
            *pp = l->next;
            break;
        }
    }
    pthread_mutex_unlock(&st->lock);
    if (l) {
        listener_signal_close(l);
        listener_join_free(l);
    }
    pthread_mutex_unlock(&st->admin);
    return wpu_empty(out, out_len);
}

static int32_t health(void *state, uint8_t **out, size_t *out_len) {
    tn_state *st = state;
    size_t actors = 0, sessions = 0;
    pthread_mutex_lock(&st->lock);
    int stopped = st->stopped;
    for (tn_listener *l = st->listeners; l; l = l->next) {
        actors++;
        pthread_mutex_lock(&l->lock);
        sessions += l->n_sessions;
        pthread_mutex_unlock(&l->lock);
    }
    pthread_mutex_unlock(&st->lock);
    char text[96];
    snprintf(text, sizeof text, "%s%zu listeners, %zu sessions", stopped ? "stopped; " : "",
             actors, sessions);
    return wpu_health(out, out_len, !stopped, text);
}

/* ---- SendText ----------------------------------------------------------- */

static int32_t send_text(tn_state *st, const char *actor, const uint8_t *msg, size_t len,
                         uint8_t **out, size_t *out_len) {
    wmp_reader r;
    wmp_reader_init(&r, msg, len);
    uint32_t fields;
    const char *session = NULL;
    uint32_t session_len = 0;
    const uint8_t *text = (const uint8_t *)"";
    uint32_t text_len = 0;
    if (!wmp_read_map(&r, &fields))
        return wpu_error(out, out_len, "SendText: the payload is not a msgpack map "
                                       "{session, text}");
    for (uint32_t f = 0; f < fields && !r.err; f++) {
        const char *k;
        uint32_t kl;
        if (!wmp_read_str(&r, &k, &kl)) break;
        if (wmp_eq(k, kl, "session"))
            wmp_read_str(&r, &session, &session_len);
        else if (wmp_eq(k, kl, "text") && wmp_peek(&r) == WMP_NIL)
            wmp_read_nil(&r);
        else if (wmp_eq(k, kl, "text"))
            wmp_read_bin(&r, &text, &text_len);
        else
            wmp_skip(&r);
    }
    if (r.err)
        return wpu_error(out, out_len, "SendText: the payload is not valid msgpack "
                                       "{session: str, text: str}");
    if (!session) return wpu_error(out, out_len, "SendText: the payload has no session");
    int shown = session_len > 64 ? 64 : (int)session_len;

    int32_t rc;
    pthread_mutex_lock(&st->lock);
    tn_listener *l = find_listener(st, actor);
    if (!l) {
        pthread_mutex_unlock(&st->lock);
        return wpu_error(out, out_len, "actor %s is not bound to %s", actor, TN_CAPABILITY);
    }
    pthread_mutex_lock(&l->lock);
    tn_session *s = l->sessions;
    while (s && !(strlen(s->id) == session_len && memcmp(s->id, session, session_len) == 0))
        s = s->next;
    if (!s) {
        rc = wpu_error(out, out_len, "SendText: no session %.*s (unknown, or not this actor's)",
                       shown, session);
    } else if (s->closing || s->done) {
        rc = wpu_error(out, out_len, "SendText: session %s is closed", s->id);
    } else {
        int w = tn_session_write(s, text, text_len, 1);
        if (w == 0)
            rc = wpu_empty(out, out_len);
        else if (w == -2)
            rc = wpu_error(out, out_len,
                           "SendText: session %s closed: its client is not reading (more "
                           "than %d bytes queued)",
                           s->id, TN_MAX_PENDING);
        else
            rc = wpu_error(out, out_len, "SendText: session %s closed: the connection failed",
                           s->id);
    }
    pthread_mutex_unlock(&l->lock);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

/* ---- the provider (the ABI glue is wpu.h's skeleton) --------------------- */

static int32_t tn_call(void *state, const wpu_call *call, uint8_t **out, size_t *out_len) {
    /* the descriptor's only operation for actors: SendText */
    return send_text(state, call->actor, call->msg, call->len, out, out_len);
}

static int tn_init(void *state) {
    tn_state *st = state;
    pthread_mutex_init(&st->admin, NULL);
    pthread_mutex_init(&st->lock, NULL);
    return 0;
}

static void tn_stop(void *state) {
    tn_state *st = state;
    pthread_mutex_lock(&st->admin);
    pthread_mutex_lock(&st->lock);
    st->stopped = 1;
    tn_listener *all = st->listeners;
    st->listeners = NULL;
    pthread_mutex_unlock(&st->lock);
    for (tn_listener *l = all; l; l = l->next) listener_signal_close(l);
    while (all) {
        tn_listener *l = all;
        all = l->next;
        listener_join_free(l);
    }
    pthread_mutex_unlock(&st->admin);
}

static void tn_destroy(void *state) {
    tn_state *st = state;
    pthread_mutex_destroy(&st->lock);
    pthread_mutex_destroy(&st->admin);
}

static const wpu_provider_def TN_PROVIDER = {
    .descriptor = &DESCRIPTOR,
    .state_size = sizeof(tn_state),
    .init = tn_init,
    .bind = bind_actor,
    .remove = remove_actor,
    .health = health,
    .call = tn_call,
    .stop = tn_stop,
    .destroy = tn_destroy,
};

WPU_PROVIDER(TN_PROVIDER)
