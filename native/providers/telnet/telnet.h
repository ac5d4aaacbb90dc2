/*
 * telnet.h - internals shared by telnet.c (the provider, listeners) and
 * session.c (one thread per connection).  See telnet.c for the behaviour.
 *
 * Objects and locks:
 *   tn_state     one per provider.  `admin` serializes BindActor,
 *                RemoveActor and stop (it is held while their threads are
 *                joined); `lock` guards the listener list and is held by
 *                SendText for its whole (non-blocking) run, so a listener
 *                unlinked under `lock` is no longer used by any SendText.
 *   tn_listener  one per bound actor: a listening socket and its thread.
 *                `lock` guards its session list and every field of its
 *                sessions marked "guarded".  Lock order: state->lock, then
 *                listener->lock.
 *   tn_session   one per connection, served by its own thread.  Written to
 *                by SendText (host threads) and by its own thread; the
 *                socket is non-blocking and every write happens under the
 *                listener's lock, so writes to one session never interleave
 *                and never block.  What the kernel does not take is queued
 *                (up to TN_MAX_PENDING) and flushed by the session thread.
 *
 * Threads are joined, never detached: a finished session is reaped (joined,
 * closed, freed) by its listener thread; RemoveActor and stop join the
 * listener and then every remaining session.
 */
#ifndef WASCC_TELNET_H
#define WASCC_TELNET_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <wascc/provider.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* macOS: accepted sockets get SO_NOSIGPIPE instead */
#endif

#define TN_CAPABILITY "wascc:telnet"
#define TN_MAX_LINE 4096                /* bytes of one line, without its end */
#define TN_MAX_PENDING (1024 * 1024)    /* queued output per session */
#define TN_MAX_MOTD (64 * 1024)
#define TN_DEFAULT_MAX_SESSIONS 1024
#define TN_FLUSH_ON_EOF_MS 2000         /* how long a half-closed client is still written to */

typedef struct tn_state tn_state;
typedef struct tn_listener tn_listener;

/* A wakeup for a thread blocked in poll(): an eventfd, or a pipe. */
typedef struct {
    int rd, wr;
} tn_wake;

int tn_wake_open(tn_wake *w);
void tn_wake_signal(const tn_wake *w);
void tn_wake_drain(const tn_wake *w);
void tn_wake_close(tn_wake *w);

typedef struct tn_session {
    struct tn_session *next;
    tn_listener *owner;
    char id[37];
    int fd;
    tn_wake wake;
    pthread_t thread;
    /* guarded by owner->lock */
    uint8_t *out;
    size_t out_off, out_len, out_cap; /* pending bytes are out[out_off, out_len) */
    int closing; /* asked to close (RemoveActor, stop, overflow) */
    int done;    /* the thread has finished; the listener may reap it */
} tn_session;

struct tn_listener {
    struct tn_listener *next;
    tn_state *state;
    char *actor;
    char *where;  /* "ADDR:PORT", for messages */
    char *config; /* the binding values that made it: a re-bind compares them */
    int fd;
    tn_wake wake;
    pthread_t thread;
    uint8_t *motd;
    size_t motd_len;
    size_t max_sessions;
    pthread_mutex_t lock;
    /* guarded by lock */
    tn_session *sessions;
    size_t n_sessions;
    int closing;
};

struct tn_state {
    pthread_mutex_t admin;
    pthread_mutex_t lock;
    tn_listener *listeners; /* guarded by lock */
    int stopped;            /* guarded by lock */
};

/* Set in every thread this provider starts (the re-entrancy guard). */
extern __thread tn_state *tn_current;

/* session.c */
void *tn_session_main(void *arg);
/* Writes or queues `len` bytes for the session; owner->lock held.  Returns
 * 0, or -1 when the session is closed or its queue would overflow (the
 * session is then closed).  `iac` doubles 0xFF bytes (telnet data). */
int tn_session_write(tn_session *s, const uint8_t *data, size_t len, int iac);
/* Marks the session closing and wakes its thread; owner->lock held. */
void tn_session_close(tn_session *s);
void tn_session_free(tn_session *s);

#endif /* WASCC_TELNET_H */
