/*
 * wpu.h - helpers shared by wascc's first-party C providers ("wascc provider
 * utilities").  Not part of the ABI: a provider needs only
 * <wascc/provider.h>.  Header-only; hosted C (malloc, stdio, string).
 *
 *   wpu_error(out, out_len, fmt, ...)   WASCC_ERROR with a formatted message
 *   wpu_finish(&w, out, out_len)        WASCC_OK with the writer's bytes
 *   wpu_descriptor(&w, &desc)           write a CapabilityDescriptor
 *   wpu_health(out, out_len, ok, msg)   reply a HealthResponse
 *   wpu_config_parse(msg, len, &cfg)    read a CapabilityConfiguration
 *   wpu_uuid4(buf)                      a random UUIDv4 string (37 bytes)
 *   wpu_utf8_seq(s, n, &cp)             length of the UTF-8 sequence at s (0: invalid)
 *   wpu_utf8_valid(s, n)                is s[0, n) well-formed UTF-8?
 *
 * The provider skeleton (the whole ABI glue of provider.h, once):
 *
 *   static const wpu_provider_def DEF = {...};   descriptor + callbacks
 *   WPU_PROVIDER(DEF)                   defines __capability_provider_create
 *   wpu_dispatcher(state)               the host's dispatcher (NULL before
 *                                       configure_dispatch and after stop)
 *
 * The skeleton allocates one block holding the wascc_provider struct and the
 * provider's own state (def.state_size bytes, zeroed, then def.init), keeps
 * the dispatcher, and answers handle_call: the core operations are refused
 * unless the caller is "system"; GetCapabilityDescriptor is answered from
 * def.descriptor; BindActor and RemoveActor parse the CapabilityConfiguration
 * and hand it to def.bind / def.remove (absent: nothing is kept per actor,
 * the call succeeds); HealthRequest goes to def.health (absent: healthy
 * until stop).  Any other operation must be one the descriptor lists as
 * callable by actors (to_provider or both); it goes to def.call with its
 * index in the descriptor, and an operation the descriptor does not list is
 * refused naming the ones it does.  stop calls def.stop and then forgets the
 * dispatcher; destroy calls stop if the host did not (a refused provider),
 * then def.destroy, then frees the block.
 */
#ifndef WASCC_WPU_H
#define WASCC_WPU_H

#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wascc/msgpack.h>
#include <wascc/provider.h>

#define WPU_SYSTEM "system"

static void *wpu_grow(void *ctx, void *old, size_t cap) {
    (void)ctx;
    return realloc(old, cap);
}

static inline void wpu_writer(wmp_writer *w) { wmp_writer_init(w, NULL, 0, wpu_grow, NULL); }

static void wpu_free(void *state, uint8_t *buf) {
    (void)state;
    free(buf);
}

static int32_t wpu_error(uint8_t **out, size_t *out_len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *text = malloc(n > 0 ? (size_t)n + 1 : 1);
    if (!text) {
        *out = NULL;
        *out_len = 0;
        return WASCC_ERROR;
    }
    va_start(ap, fmt);
    vsnprintf(text, (size_t)n + 1, fmt, ap);
    va_end(ap);
    *out = (uint8_t *)text;
    *out_len = n > 0 ? (size_t)n : 0;
    return WASCC_ERROR;
}

/* Hands the writer's buffer to the host as the reply. */
static int32_t wpu_finish(wmp_writer *w, uint8_t **out, size_t *out_len) {
    if (w->err) {
        free(w->buf);
        return wpu_error(out, out_len, "out of memory while encoding the reply");
    }
    *out = w->buf;
    *out_len = w->len;
    return WASCC_OK;
}

static int32_t wpu_empty(uint8_t **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    return WASCC_OK;
}

/* direction: 0 to_actor, 1 to_provider, 2 both (encoded as {index: nil}) */
typedef struct {
    const char *name;
    int direction;
    const char *doctext;
} wpu_operation;

typedef struct {
    const char *id, *name, *version;
    uint32_t revision;
    const char *long_description;
    const wpu_operation *operations;
    size_t n_operations;
} wpu_descriptor_t;

static void wpu_descriptor(wmp_writer *w, const wpu_descriptor_t *d) {
    wmp_write_map(w, 6);
    wmp_write_cstr(w, "id");
    wmp_write_cstr(w, d->id);
    wmp_write_cstr(w, "name");
    wmp_write_cstr(w, d->name);
    wmp_write_cstr(w, "version");
    wmp_write_cstr(w, d->version);
    wmp_write_cstr(w, "revision");
    wmp_write_uint(w, d->revision);
    wmp_write_cstr(w, "long_description");
    wmp_write_cstr(w, d->long_description);
    wmp_write_cstr(w, "supported_operations");
    wmp_write_array(w, (uint32_t)d->n_operations);
    for (size_t i = 0; i < d->n_operations; i++) {
        wmp_write_map(w, 3);
        wmp_write_cstr(w, "name");
        wmp_write_cstr(w, d->operations[i].name);
        wmp_write_cstr(w, "direction");
        wmp_write_map(w, 1);
        wmp_write_uint(w, (uint64_t)d->operations[i].direction);
        wmp_write_nil(w);
        wmp_write_cstr(w, "doctext");
        wmp_write_cstr(w, d->operations[i].doctext);
    }
}

static int32_t wpu_descriptor_reply(const wpu_descriptor_t *d, uint8_t **out, size_t *out_len) {
    wmp_writer w;
    wpu_writer(&w);
    wpu_descriptor(&w, d);
    return wpu_finish(&w, out, out_len);
}

static int32_t wpu_health(uint8_t **out, size_t *out_len, int healthy, const char *message) {
    wmp_writer w;
    wpu_writer(&w);
    wmp_write_map(&w, 2);
    wmp_write_cstr(&w, "healthy");
    wmp_write_bool(&w, healthy);
    wmp_write_cstr(&w, "message");
    wmp_write_cstr(&w, message);
    return wpu_finish(&w, out, out_len);
}

/* A CapabilityConfiguration: the actor's key and its binding's values. */
typedef struct {
    char *module;
    size_t n;
    char **keys;
    char **values;
} wpu_config;

static char *wpu_strndup(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static void wpu_config_free(wpu_config *c) {
    for (size_t i = 0; i < c->n; i++) {
        free(c->keys[i]);
        free(c->values[i]);
    }
    free(c->keys);
    free(c->values);
    free(c->module);
    memset(c, 0, sizeof *c);
}

/* 0 on success; -1 if msg is not a CapabilityConfiguration. */
static int wpu_config_parse(const uint8_t *msg, size_t len, wpu_config *c) {
    memset(c, 0, sizeof *c);
    wmp_reader r;
    wmp_reader_init(&r, msg, len);
    uint32_t fields;
    if (!wmp_read_map(&r, &fields)) return -1;
    for (uint32_t f = 0; f < fields; f++) {
        const char *k;
        uint32_t kl;
        if (!wmp_read_str(&r, &k, &kl)) goto bad;
        if (wmp_eq(k, kl, "module")) {
            const char *m;
            uint32_t ml;
            if (!wmp_read_str(&r, &m, &ml)) goto bad;
            free(c->module);
            c->module = wpu_strndup(m, ml);
            if (!c->module) goto bad;
        } else if (wmp_eq(k, kl, "values") && wmp_peek(&r) == WMP_MAP) {
            uint32_t n;
            if (!wmp_read_map(&r, &n)) goto bad;
            c->keys = calloc(n ? n : 1, sizeof(char *));
            c->values = calloc(n ? n : 1, sizeof(char *));
            if (!c->keys || !c->values) goto bad;
            for (uint32_t i = 0; i < n; i++) {
                const char *a, *b;
                uint32_t al, bl;
                if (!wmp_read_str(&r, &a, &al) || !wmp_read_str(&r, &b, &bl)) goto bad;
                c->keys[c->n] = wpu_strndup(a, al);
                c->values[c->n] = wpu_strndup(b, bl);
                c->n++;
                if (!c->keys[c->n - 1] || !c->values[c->n - 1]) goto bad;
            }
        } else if (!wmp_skip(&r)) {
            goto bad;
        }
    }
    if (!c->module) goto bad;
    return 0;
bad:
    wpu_config_free(c);
    return -1;
}

static const char *wpu_config_get(const wpu_config *c, const char *key) {
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->keys[i], key) == 0) return c->values[i];
    return NULL;
}

/* A random UUIDv4 ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"); buf holds 37 bytes. */
static int wpu_uuid4(char buf[37]) {
    uint8_t b[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = read(fd, b + got, sizeof b - got);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        got += (size_t)n;
    }
    close(fd);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(buf, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
             b[12], b[13], b[14], b[15]);
    return 0;
}

/* Length (1-4) of the well-formed UTF-8 sequence at s, n > 0 bytes left,
 * with its code point in *cp; 0 if the bytes there are not one (overlong
 * forms, surrogates, values above U+10FFFF and truncations are not). */
static size_t wpu_utf8_seq(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t c = s[0];
    size_t len;
    uint32_t min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        *cp = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        *cp = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        *cp = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        *cp = (*cp << 6) | (s[i] & 0x3f);
    }
    if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff)) return 0;
    return len;
}

static int wpu_utf8_valid(const uint8_t *s, size_t n) {
    uint32_t cp;
    while (n > 0) {
        size_t len = s[0] < 0x80 ? 1 : wpu_utf8_seq(s, n, &cp);
        if (len == 0) return 0;
        s += len;
        n -= len;
    }
    return 1;
}

/* ---- the provider skeleton ---------------------------------------------- */

/* One call of an operation the provider offers to actors. */
typedef struct {
    const char *actor;  /* the caller's public key (or "system") */
    const char *op;     /* the operation's name */
    size_t index;       /* its index in the descriptor's operations */
    const uint8_t *msg; /* the payload; NULL when len is 0 */
    size_t len;
} wpu_call;

/* What a provider is: its descriptor and its callbacks.  Every callback gets
 * the provider's own state (def.state_size bytes); the ones that answer set
 * *out / *out_len as handle_call does (wpu_empty, wpu_error, wpu_finish). */
typedef struct {
    const wpu_descriptor_t *descriptor; /* its id prefixes the skeleton's errors */
    size_t state_size;
    /* Optional: set the zeroed state up; nonzero refuses creation. */
    int (*init)(void *state);
    /* Optional: BindActor (a bind, or a re-bind: provider.h section 2). */
    int32_t (*bind)(void *state, const wpu_config *cfg, uint8_t **out, size_t *out_len);
    /* Optional: RemoveActor (idempotent). */
    int32_t (*remove)(void *state, const wpu_config *cfg, uint8_t **out, size_t *out_len);
    /* Optional: HealthRequest. */
    int32_t (*health)(void *state, uint8_t **out, size_t *out_len);
    /* Required if the descriptor lists operations for actors to call. */
    int32_t (*call)(void *state, const wpu_call *call, uint8_t **out, size_t *out_len);
    /* Optional: stop threads, close sockets; called once. */
    void (*stop)(void *state);
    /* Optional: release what the state holds (the skeleton frees the block). */
    void (*destroy)(void *state);
} wpu_provider_def;

typedef struct {
    wascc_provider iface; /* handed to the host; iface.state is this block */
    const wpu_provider_def *def;
    const wascc_dispatcher *dispatcher; /* __atomic: read from the provider's threads */
    int stopped;                        /* __atomic */
    _Alignas(max_align_t) unsigned char state[];
} wpu_block;

static wpu_block *wpu_block_of(void *state) {
    return (wpu_block *)((char *)state - offsetof(wpu_block, state));
}

/* The host's dispatcher, or NULL before configure_dispatch and after stop. */
static const wascc_dispatcher *wpu_dispatcher(void *state) {
    return __atomic_load_n(&wpu_block_of(state)->dispatcher, __ATOMIC_ACQUIRE);
}

static int wpu_is_core(const char *op) {
    return strcmp(op, "GetCapabilityDescriptor") == 0 || strcmp(op, "BindActor") == 0 ||
           strcmp(op, "RemoveActor") == 0 || strcmp(op, "HealthRequest") == 0;
}

static int32_t wpu_abi_configure(void *block, const wascc_dispatcher *dispatcher) {
    __atomic_store_n(&((wpu_block *)block)->dispatcher, dispatcher, __ATOMIC_RELEASE);
    return WASCC_OK;
}

static int32_t wpu_unknown_operation(const wpu_descriptor_t *d, const char *op, uint8_t **out,
                                     size_t *out_len) {
    char offered[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < d->n_operations && used < sizeof offered; i++) {
        if (d->operations[i].direction == 0) continue; /* to_actor: actors do not call it */
        int n = snprintf(offered + used, sizeof offered - used, "%s%s", used ? ", " : "",
                         d->operations[i].name);
        if (n < 0) break;
        used += (size_t)n;
    }
    return wpu_error(out, out_len,
                     "%s: unknown operation '%s': %s does not support the operation %s "
                     "(it offers %s)",
                     d->id, op, d->id, op, used ? offered : "none");
}

static int32_t wpu_abi_core(wpu_block *b, const char *op, const uint8_t *msg, size_t msg_len,
                            uint8_t **out, size_t *out_len) {
    const wpu_provider_def *def = b->def;
    void *state = b->state;
    if (strcmp(op, "GetCapabilityDescriptor") == 0)
        return wpu_descriptor_reply(def->descriptor, out, out_len);
    if (strcmp(op, "HealthRequest") == 0) {
        if (def->health) return def->health(state, out, out_len);
        int stopped = __atomic_load_n(&b->stopped, __ATOMIC_ACQUIRE);
        return wpu_health(out, out_len, !stopped, stopped ? "stopped" : "");
    }
    /* BindActor / RemoveActor */
    wpu_config cfg;
    if (wpu_config_parse(msg, msg_len, &cfg) != 0)
        return wpu_error(out, out_len,
                         "%s %s: payload is not a CapabilityConfiguration (a msgpack map "
                         "with a string field 'module')",
                         def->descriptor->id, op);
    int32_t (*fn)(void *, const wpu_config *, uint8_t **, size_t *) =
        op[0] == 'B' ? def->bind : def->remove;
    int32_t rc = fn ? fn(state, &cfg, out, out_len) : wpu_empty(out, out_len);
    wpu_config_free(&cfg);
    return rc;
}

static int32_t wpu_abi_handle_call(void *block, const char *actor, const char *op,
                                   const uint8_t *msg, size_t msg_len, uint8_t **out,
                                   size_t *out_len) {
    wpu_block *b = block;
    const wpu_descriptor_t *d = b->def->descriptor;
    *out = NULL;
    *out_len = 0;
    if (!actor || !op) return wpu_error(out, out_len, "%s: no actor or operation", d->id);
    if (wpu_is_core(op)) {
        if (strcmp(actor, WPU_SYSTEM) != 0)
            return wpu_error(out, out_len,
                             "%s: %s is reserved for the host; actor %s may not send it", d->id,
                             op, actor);
        return wpu_abi_core(b, op, msg, msg_len, out, out_len);
    }
    for (size_t i = 0; i < d->n_operations; i++) {
        if (d->operations[i].direction == 0 || strcmp(op, d->operations[i].name) != 0) continue;
        if (!b->def->call) break;
        wpu_call call = {actor, op, i, msg, msg_len};
        return b->def->call(b->state, &call, out, out_len);
    }
    return wpu_unknown_operation(d, op, out, out_len);
}

static void wpu_abi_stop(void *block) {
    wpu_block *b = block;
    if (__atomic_exchange_n(&b->stopped, 1, __ATOMIC_ACQ_REL)) return;
    if (b->def->stop) b->def->stop(b->state);
    __atomic_store_n(&b->dispatcher, NULL, __ATOMIC_RELEASE);
}

static void wpu_abi_destroy(void *block) {
    wpu_block *b = block;
    wpu_abi_stop(b); /* a provider the host refused is destroyed without a stop */
    if (b->def->destroy) b->def->destroy(b->state);
    free(b);
}

static wascc_provider *wpu_provider_create(const wpu_provider_def *def) {
    wpu_block *b = calloc(1, sizeof *b + def->state_size);
    if (!b) return NULL;
    b->def = def;
    if (def->init && def->init(b->state) != 0) {
        free(b);
        return NULL;
    }
    b->iface.abi_version = WASCC_PROVIDER_ABI_VERSION;
    b->iface.state = b;
    b->iface.configure_dispatch = wpu_abi_configure;
    b->iface.handle_call = wpu_abi_handle_call;
    b->iface.free_buffer = wpu_free;
    b->iface.stop = wpu_abi_stop;
    b->iface.destroy = wpu_abi_destroy;
    return &b->iface;
}

/* Defines the provider's exported entry point from its wpu_provider_def. */
#define WPU_PROVIDER(def)                                                              \
    WASCC_EXPORT wascc_provider *__capability_provider_create(void) {                  \
        return wpu_provider_create(&(def));                                            \
    }

#endif /* WASCC_WPU_H */
