/*
 * kvstore.c - hash tables, lists, sets and expiry for the in-memory
 * wascc:keyvalue provider.  See kvstore.h; the caller holds the lock.
 */
#include "kvstore.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KV_MIN_CAP 8

const char *kv_type_name(int type) {
    switch (type) {
    case KV_STRING: return "string";
    case KV_LIST: return "list";
    case KV_SET: return "set";
    default: return "unknown";
    }
}

int64_t kv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

kv_str *kv_str_new(const char *data, size_t len) {
    if (len > UINT32_MAX) return NULL;
    kv_str *s = malloc(sizeof *s + len + 1);
    if (!s) return NULL;
    s->len = (uint32_t)len;
    if (len) memcpy(s->data, data, len);
    s->data[len] = 0;
    return s;
}

static int kv_str_eq(const kv_str *s, const char *data, size_t len) {
    return s->len == len && (len == 0 || memcmp(s->data, data, len) == 0);
}

/* ---- SipHash-1-3: keyed, so actors cannot aim for collisions ------------ */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                 \
    do {                                                                                         \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                                \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                                   \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                                   \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                                \
    } while (0)

static uint64_t siphash13(const uint64_t k[2], const uint8_t *in, size_t len) {
    uint64_t v0 = 0x736f6d6570736575ULL ^ k[0];
    uint64_t v1 = 0x646f72616e646f6dULL ^ k[1];
    uint64_t v2 = 0x6c7967656e657261ULL ^ k[0];
    uint64_t v3 = 0x7465646279746573ULL ^ k[1];
    uint64_t b = (uint64_t)len << 56;
    const uint8_t *end = in + (len - len % 8);
    for (; in != end; in += 8) {
        uint64_t m = 0;
        for (int i = 0; i < 8; i++) m |= (uint64_t)in[i] << (8 * i);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t i = 0; i < len % 8; i++) b |= (uint64_t)in[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static void kv_random_seed(uint64_t seed[2]) {
    uint8_t b[16];
    size_t got = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        while (got < sizeof b) {
            ssize_t n = read(fd, b + got, sizeof b - got);
            if (n <= 0) break;
            got += (size_t)n;
        }
        close(fd);
    }
    if (got == sizeof b) {
        memcpy(seed, b, sizeof b);
    } else { /* no /dev/urandom: still different per store and per run */
        seed[0] = (uint64_t)kv_now() ^ 0x9e3779b97f4a7c15ULL;
        seed[1] = (uint64_t)(uintptr_t)seed ^ ((uint64_t)getpid() << 32);
    }
}

/* ---- hash table --------------------------------------------------------- */

void kv_table_init(kv_table *t, const uint64_t seed[2]) {
    t->slots = NULL;
    t->cap = 0;
    t->count = 0;
    t->seed[0] = seed[0];
    t->seed[1] = seed[1];
}

uint64_t kv_hash(const kv_table *t, const char *data, size_t len) {
    return siphash13(t->seed, (const uint8_t *)data, len);
}

static size_t kv_find(const kv_table *t, uint64_t hash, const char *data, size_t len) {
    size_t mask = t->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        const kv_slot *s = &t->slots[i];
        if (!s->key) return (size_t)-1;
        if (s->hash == hash && kv_str_eq(s->key, data, len)) return i;
    }
}

void *kv_table_get(const kv_table *t, uint64_t hash, const char *data, size_t len) {
    if (t->count == 0) return NULL;
    size_t i = kv_find(t, hash, data, len);
    return i == (size_t)-1 ? NULL : t->slots[i].item;
}

static void kv_place(kv_slot *slots, size_t cap, const kv_slot *from) {
    size_t mask = cap - 1;
    size_t i = from->hash & mask;
    while (slots[i].key) i = (i + 1) & mask;
    slots[i] = *from;
}

static int kv_resize(kv_table *t, size_t cap) {
    kv_slot *slots = calloc(cap, sizeof *slots);
    if (!slots) return KV_NOMEM;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].key) kv_place(slots, cap, &t->slots[i]);
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return KV_OK;
}

int kv_table_insert(kv_table *t, uint64_t hash, const kv_str *key, void *item) {
    /* keep the load factor at or below 3/4 */
    if ((t->count + 1) * 4 > t->cap * 3) {
        size_t cap = t->cap ? t->cap * 2 : KV_MIN_CAP;
        if (cap < t->cap || cap > SIZE_MAX / sizeof(kv_slot)) return KV_NOMEM;
        if (kv_resize(t, cap) != KV_OK) return KV_NOMEM;
    }
    kv_slot s = {hash, key, item};
    kv_place(t->slots, t->cap, &s);
    t->count++;
    return KV_OK;
}

void *kv_table_remove(kv_table *t, uint64_t hash, const char *data, size_t len) {
    if (t->count == 0) return NULL;
    size_t i = kv_find(t, hash, data, len);
    if (i == (size_t)-1) return NULL;
    void *item = t->slots[i].item;
    /* backward-shift deletion: no tombstones, probe chains stay short */
    size_t mask = t->cap - 1;
    for (size_t j = (i + 1) & mask; t->slots[j].key; j = (j + 1) & mask) {
        size_t home = t->slots[j].hash & mask;
        /* slot j may fill the hole at i unless its home lies cyclically in (i, j] */
        int stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    memset(&t->slots[i], 0, sizeof t->slots[i]);
    t->count--;
    return item;
}

void kv_table_maybe_shrink(kv_table *t) {
    if (t->cap <= KV_MIN_CAP || t->count * 8 >= t->cap) return;
    if (t->count == 0) {
        free(t->slots);
        t->slots = NULL;
        t->cap = 0;
        return;
    }
    size_t cap = t->cap;
    while (cap > KV_MIN_CAP && t->count * 4 < cap) cap /= 2; /* ends at load 1/4 .. 1/2 */
    kv_resize(t, cap); /* on failure the table simply stays larger */
}

void kv_table_free(kv_table *t) {
    free(t->slots);
    t->slots = NULL;
    t->cap = t->count = 0;
}

/* ---- entries ------------------------------------------------------------ */

static void kv_set_free(kv_table *set) {
    for (size_t i = 0; i < set->cap; i++)
        if (set->slots[i].key) free(set->slots[i].item);
    kv_table_free(set);
}

static void kv_entry_free(kv_entry *e) {
    switch (e->type) {
    case KV_STRING: free(e->v.str); break;
    case KV_LIST:
        for (size_t i = 0; i < e->v.list.len; i++) free(e->v.list.items[i]);
        free(e->v.list.items);
        break;
    case KV_SET: kv_set_free(&e->v.set); break;
    }
    free(e->key);
    free(e);
}

int kv_store_init(kv_store *s) {
    uint64_t seed[2];
    kv_random_seed(seed);
    kv_table_init(&s->keys, seed);
    s->volatile_keys = 0;
    s->sweep_cursor = 0;
    return KV_OK;
}

void kv_store_free(kv_store *s) {
    for (size_t i = 0; i < s->keys.cap; i++)
        if (s->keys.slots[i].key) kv_entry_free(s->keys.slots[i].item);
    kv_table_free(&s->keys);
    s->volatile_keys = 0;
}

void kv_delete_entry(kv_store *s, kv_entry *e) {
    kv_table_remove(&s->keys, kv_hash(&s->keys, e->key->data, e->key->len), e->key->data,
                    e->key->len);
    if (e->expires_at) s->volatile_keys--;
    kv_entry_free(e);
}

kv_entry *kv_lookup(kv_store *s, const char *key, size_t klen, int64_t now) {
    kv_entry *e = kv_table_get(&s->keys, kv_hash(&s->keys, key, klen), key, klen);
    if (e && e->expires_at && e->expires_at <= now) {
        kv_delete_entry(s, e);
        return NULL;
    }
    return e;
}

kv_entry *kv_create(kv_store *s, const char *key, size_t klen, int type) {
    kv_entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->key = kv_str_new(key, klen);
    if (!e->key) {
        free(e);
        return NULL;
    }
    e->type = type;
    if (type == KV_SET) kv_table_init(&e->v.set, s->keys.seed);
    if (kv_table_insert(&s->keys, kv_hash(&s->keys, key, klen), e->key, e) != KV_OK) {
        kv_entry_free(e);
        return NULL;
    }
    return e;
}

int kv_delete(kv_store *s, const char *key, size_t klen) {
    kv_entry *e = kv_table_get(&s->keys, kv_hash(&s->keys, key, klen), key, klen);
    if (!e) return 0;
    kv_delete_entry(s, e);
    return 1;
}

void kv_set_deadline(kv_store *s, kv_entry *e, int64_t expires_at) {
    if (e->expires_at && !expires_at) s->volatile_keys--;
    if (!e->expires_at && expires_at) s->volatile_keys++;
    e->expires_at = expires_at;
}

void kv_sweep(kv_store *s, int64_t now, size_t budget) {
    if (s->volatile_keys == 0 || s->keys.cap == 0) return;
    size_t mask = s->keys.cap - 1;
    size_t i = s->sweep_cursor & mask;
    while (budget-- && s->volatile_keys) {
        kv_slot *slot = &s->keys.slots[i];
        kv_entry *e = slot->key ? slot->item : NULL;
        if (e && e->expires_at && e->expires_at <= now) {
            /* the backward shift may move another key into slot i: look again */
            kv_delete_entry(s, e);
            continue;
        }
        i = (i + 1) & mask;
    }
    s->sweep_cursor = i;
}

void kv_compact(kv_store *s) {
    size_t cap = s->keys.cap;
    kv_table_maybe_shrink(&s->keys);
    if (s->keys.cap != cap) s->sweep_cursor = 0;
}

/* ---- lists -------------------------------------------------------------- */

int kv_list_push(kv_list *l, kv_str *item) {
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        if (cap < l->cap || cap > SIZE_MAX / sizeof *l->items) return KV_NOMEM;
        kv_str **items = realloc(l->items, cap * sizeof *items);
        if (!items) return KV_NOMEM;
        l->items = items;
        l->cap = cap;
    }
    l->items[l->len++] = item;
    return KV_OK;
}

size_t kv_list_remove_all(kv_list *l, const char *data, size_t len) {
    size_t kept = 0;
    for (size_t i = 0; i < l->len; i++) {
        if (kv_str_eq(l->items[i], data, len))
            free(l->items[i]);
        else
            l->items[kept++] = l->items[i];
    }
    size_t removed = l->len - kept;
    l->len = kept;
    if (kept && kept * 4 < l->cap) { /* give back most of a drained array */
        kv_str **items = realloc(l->items, kept * 2 * sizeof *items);
        if (items) {
            l->items = items;
            l->cap = kept * 2;
        }
    }
    return removed;
}

/* ---- sets --------------------------------------------------------------- */

int kv_set_add(kv_table *set, const char *data, size_t len) {
    uint64_t h = kv_hash(set, data, len);
    if (kv_table_get(set, h, data, len)) return 0;
    kv_str *m = kv_str_new(data, len);
    if (!m) return KV_NOMEM;
    if (kv_table_insert(set, h, m, m) != KV_OK) {
        free(m);
        return KV_NOMEM;
    }
    return 1;
}

int kv_set_remove(kv_table *set, const char *data, size_t len) {
    kv_str *m = kv_table_remove(set, kv_hash(set, data, len), data, len);
    if (!m) return 0;
    free(m);
    kv_table_maybe_shrink(set);
    return 1;
}

int kv_set_contains(const kv_table *set, const char *data, size_t len) {
    return kv_table_get(set, kv_hash(set, data, len), data, len) != NULL;
}
