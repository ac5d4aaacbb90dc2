/*
 * session.c - one telnet session: its thread, its line discipline and its
 * output queue.  The rules are documented at the top of telnet.c.
 */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include "telnet.h"
#include "wpu.h"

enum { IAC = 255, DONT = 254, DO = 253, WONT = 252, WILL = 251, SB = 250, SE = 240 };

enum { T_DATA, T_IAC, T_OPT, T_SB, T_SB_IAC };

typedef struct {
    uint8_t line[TN_MAX_LINE];
    size_t len;
    int tstate;     /* telnet command parser */
    uint8_t verb;   /* WILL/WONT/DO/DONT waiting for its option byte */
    int skip_lf;    /* a CR ended the line: swallow a following LF or NUL */
    const char *reason; /* why the session is being closed, told to the client */
} tn_line;

/* ---- output (owner->lock held) ------------------------------------------ */

void tn_session_close(tn_session *s) {
    if (!s->closing) {
        s->closing = 1;
        tn_wake_signal(&s->wake);
    }
}

/* Sends what the kernel takes now; -1 on a socket error. */
static ssize_t send_now(tn_session *s, const uint8_t *p, size_t n) {
    size_t sent = 0;
    while (sent < n) {
        ssize_t w = send(s->fd, p + sent, n - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return -1;
        }
        sent += (size_t)w;
    }
    return (ssize_t)sent;
}

/* Writes queued output; -1 (and closing) on a socket error. */
static int flush_pending(tn_session *s) {
    size_t n = s->out_len - s->out_off;
    if (n == 0) return 0;
    ssize_t w = send_now(s, s->out + s->out_off, n);
    if (w < 0) {
        tn_session_close(s);
        return -1;
    }
    s->out_off += (size_t)w;
    if (s->out_off == s->out_len) s->out_off = s->out_len = 0;
    return 0;
}

static int enqueue(tn_session *s, const uint8_t *p, size_t n) {
    size_t pending = s->out_len - s->out_off;
    if (pending + n > TN_MAX_PENDING) return -1;
    if (s->out_off > 0) {
        memmove(s->out, s->out + s->out_off, pending);
        s->out_off = 0;
        s->out_len = pending;
    }
    if (s->out_len + n > s->out_cap) {
        size_t cap = s->out_cap ? s->out_cap : 4096;
        while (cap < s->out_len + n) cap *= 2;
        uint8_t *nb = realloc(s->out, cap);
        if (!nb) return -1;
        s->out = nb;
        s->out_cap = cap;
    }
    memcpy(s->out + s->out_len, p, n);
    s->out_len += n;
    return 0;
}

int tn_session_write(tn_session *s, const uint8_t *data, size_t len, int iac) {
    if (s->closing || s->done) return -1;
    if (len == 0) return 0;
    if (iac && memchr(data, IAC, len)) {
        /* telnet data: a 0xFF byte is sent as IAC IAC */
        uint8_t *doubled = malloc(2 * len);
        if (!doubled) return -2;
        size_t m = 0;
        for (size_t i = 0; i < len; i++) {
            doubled[m++] = data[i];
            if (data[i] == IAC) doubled[m++] = IAC;
        }
        int rc = tn_session_write(s, doubled, m, 0);
        free(doubled);
        return rc;
    }
    size_t done = 0;
    if (s->out_len == s->out_off) {
        ssize_t w = send_now(s, data, len);
        if (w < 0) {
            tn_session_close(s);
            return -3;
        }
        done = (size_t)w;
    }
    if (done < len) {
        if (enqueue(s, data + done, len - done) != 0) {
            /* Part of the text may have gone out: the stream is broken, close it. */
            tn_session_close(s);
            return -2;
        }
        tn_wake_signal(&s->wake); /* the thread now waits for POLLOUT too */
    }
    return 0;
}

void tn_session_free(tn_session *s) {
    if (s->fd >= 0) close(s->fd);
    tn_wake_close(&s->wake);
    free(s->out);
    free(s);
}

/* ---- dispatch ----------------------------------------------------------- */

/* SessionStarted {session} or ReceiveText {session, text}.  The actor's
 * answer and errors are ignored: the session goes on either way. */
static void dispatch(tn_session *s, const char *op, const uint8_t *text, size_t len,
                     int with_text) {
    const wascc_dispatcher *d = wpu_dispatcher(s->owner->state);
    if (!d || !d->dispatch) return;
    wmp_writer w;
    wpu_writer(&w);
    wmp_write_map(&w, with_text ? 2 : 1);
    wmp_write_cstr(&w, "session");
    wmp_write_cstr(&w, s->id);
    if (with_text) {
        wmp_write_cstr(&w, "text");
        wmp_write_str(&w, (const char *)text, len);
    }
    if (!w.err) {
        uint8_t *out = NULL;
        size_t out_len = 0;
        d->dispatch(d->host_data, s->owner->actor, op, w.buf, w.len, &out, &out_len);
        if (out) d->free_buffer(d->host_data, out);
    }
    free(w.buf);
}

/* ---- input -------------------------------------------------------------- */

static int is_closing(tn_session *s) {
    pthread_mutex_lock(&s->owner->lock);
    int c = s->closing;
    pthread_mutex_unlock(&s->owner->lock);
    return c;
}

static void reply_option(tn_session *s, uint8_t verb, uint8_t option) {
    /* We enable no telnet option: refuse what the client offers or asks. */
    uint8_t answer[3] = {IAC, verb == DO ? WONT : DONT, option};
    pthread_mutex_lock(&s->owner->lock);
    tn_session_write(s, answer, sizeof answer, 0);
    pthread_mutex_unlock(&s->owner->lock);
}

/* A complete line: -1 ends the session. */
static int end_line(tn_session *s, tn_line *ld) {
    if (!wpu_utf8_valid(ld->line, ld->len)) {
        ld->reason = "binary data: a line is not UTF-8 text";
        return -1;
    }
    dispatch(s, "ReceiveText", ld->line, ld->len, 1);
    ld->len = 0;
    return is_closing(s) ? -1 : 0;
}

static int data_byte(tn_session *s, tn_line *ld, uint8_t c) {
    if (ld->skip_lf) {
        ld->skip_lf = 0;
        if (c == '\n' || c == 0) return 0;
    }
    if (c == '\r') {
        ld->skip_lf = 1;
        return end_line(s, ld);
    }
    if (c == '\n') return end_line(s, ld);
    if (c == 0x08 || c == 0x7f) { /* erase the last character */
        while (ld->len > 0 && (ld->line[ld->len - 1] & 0xc0) == 0x80) ld->len--;
        if (ld->len > 0) ld->len--;
        return 0;
    }
    if (c < 0x20 && c != '\t') return 0; /* other control characters are dropped */
    if (ld->len == TN_MAX_LINE) {
        ld->reason = "line longer than 4096 bytes";
        return -1;
    }
    ld->line[ld->len++] = c;
    return 0;
}

/* Feeds received bytes through the telnet parser; -1 ends the session. */
static int feed(tn_session *s, tn_line *ld, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        switch (ld->tstate) {
        case T_DATA:
            if (c == IAC) {
                ld->tstate = T_IAC;
                continue;
            }
            break;
        case T_IAC:
            ld->tstate = T_DATA;
            if (c == IAC) break; /* an escaped 0xFF data byte */
            if (c >= WILL && c <= DONT) {
                ld->verb = c;
                ld->tstate = T_OPT;
            } else if (c == SB) {
                ld->tstate = T_SB;
            } /* other commands (NOP, IP, AYT, GA...) are dropped */
            continue;
        case T_OPT:
            ld->tstate = T_DATA;
            if (ld->verb == DO || ld->verb == WILL) reply_option(s, ld->verb, c);
            continue;
        case T_SB:
            if (c == IAC) ld->tstate = T_SB_IAC;
            continue;
        case T_SB_IAC:
            ld->tstate = c == SE ? T_DATA : T_SB;
            continue;
        }
        if (data_byte(s, ld, c) < 0) return -1;
    }
    return 0;
}

/* ---- the thread --------------------------------------------------------- */

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void *tn_session_main(void *arg) {
    tn_session *s = arg;
    tn_listener *l = s->owner;
    tn_current = l->state;
    tn_line *ld = calloc(1, sizeof *ld);
    uint8_t buf[4096];

    pthread_mutex_lock(&l->lock);
    if (l->motd_len) tn_session_write(s, l->motd, l->motd_len, 0);
    int closing = s->closing;
    pthread_mutex_unlock(&l->lock);
    if (!ld) closing = 1;
    if (!closing) dispatch(s, "SessionStarted", NULL, 0, 0);

    int eof = 0;
    int64_t eof_deadline = 0;
    while (!closing) {
        pthread_mutex_lock(&l->lock);
        closing = s->closing;
        int pending = s->out_len > s->out_off;
        pthread_mutex_unlock(&l->lock);
        if (closing || (eof && !pending)) break;
        int timeout = -1;
        if (eof) {
            int64_t left = eof_deadline - now_ms();
            if (left <= 0) break;
            timeout = (int)left;
        }
        struct pollfd p[2] = {
            {.fd = s->fd, .events = (short)((eof ? 0 : POLLIN) | (pending ? POLLOUT : 0))},
            {.fd = s->wake.rd, .events = POLLIN},
        };
        if (poll(p, 2, timeout) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (p[1].revents) tn_wake_drain(&s->wake);
        if (pending && (p[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
            pthread_mutex_lock(&l->lock);
            flush_pending(s);
            pthread_mutex_unlock(&l->lock);
        }
        if (!eof && (p[0].revents & (POLLIN | POLLERR | POLLHUP))) {
            ssize_t n = recv(s->fd, buf, sizeof buf, 0);
            if (n == 0) {
                /* The client is done sending; finish writing to it, briefly. */
                eof = 1;
                eof_deadline = now_ms() + TN_FLUSH_ON_EOF_MS;
            } else if (n < 0) {
                if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) break;
            } else if (feed(s, ld, buf, (size_t)n) < 0) {
                break;
            }
        }
    }

    pthread_mutex_lock(&l->lock);
    if (ld && ld->reason && !s->closing) {
        char notice[160];
        int m = snprintf(notice, sizeof notice, "\r\n%s: closing the session: %s\r\n",
                         TN_CAPABILITY, ld->reason);
        /* best effort, never blocking: what does not fit is dropped */
        if (s->out_len == s->out_off) send_now(s, (const uint8_t *)notice, (size_t)m);
    }
    s->closing = 1;
    s->done = 1;
    pthread_mutex_unlock(&l->lock);
    free(ld);
    /* FIN after what is queued in the kernel; then discard unread input, so
     * that the close does not turn into a reset that loses the notice. */
    shutdown(s->fd, SHUT_WR);
    for (int i = 0; i < 16 && recv(s->fd, buf, sizeof buf, MSG_DONTWAIT) > 0; i++) {
    }
    shutdown(s->fd, SHUT_RD);
    tn_wake_signal(&l->wake); /* the listener reaps (joins and frees) this session */
    return NULL;
}
