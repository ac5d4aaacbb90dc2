/*
 * kvstore.h - the in-memory key space behind the native wascc:keyvalue
 * provider.  Not thread-safe by itself: keyvalue.c holds the store's mutex
 * around every call.
 *
 * Keys and values are binary-safe byte strings (kv_str).  A key holds one of
 * three types, as in Redis: a string (which Add reads as a decimal integer),
 * a list (a dynamic array) or a set (an open-addressing hash set).  An
 * aggregate that becomes empty is deleted, so "exists" and "empty" agree.
 *
 * Expiry applies to string keys set with Set's `expires`: the deadline is on
 * CLOCK_MONOTONIC; an expired key is deleted when it is looked up (lazily)
 * and by kv_sweep, which each call runs over a bounded number of slots.
 */
#ifndef WASCC_KVSTORE_H
#define WASCC_KVSTORE_H

#include <stddef.h>
#include <stdint.h>

/* Shared between this directory's .c files, never exported from the library
 * (the Makefile also builds with -fvisibility=hidden; this holds without it). */
#define KV_INTERNAL __attribute__((visibility("hidden")))

typedef struct kv_str {
    uint32_t len;
    char data[]; /* len bytes, then a NUL (not counted) */
} kv_str;

/* An open-addressing hash table (linear probing, backward-shift deletion).
 * Each slot keeps the item's hash, its key and the item; `key == NULL`
 * marks an empty slot.  For a set, item == key (a kv_str the set owns). */
typedef struct {
    uint64_t hash;
    const kv_str *key;
    void *item;
} kv_slot;

typedef struct {
    kv_slot *slots;
    size_t cap; /* 0 or a power of two */
    size_t count;
    uint64_t seed[2];
} kv_table;

enum { KV_STRING = 1, KV_LIST, KV_SET };

typedef struct {
    kv_str **items;
    size_t len, cap;
} kv_list;

typedef struct kv_entry {
    kv_str *key;
    int type;
    int64_t expires_at; /* CLOCK_MONOTONIC ns; 0 = never */
    union {
        kv_str *str;
        kv_list list;
        kv_table set;
    } v;
} kv_entry;

typedef struct {
    kv_table keys;
    size_t volatile_keys; /* entries with expires_at != 0 */
    size_t sweep_cursor;
} kv_store;

/* Errors returned by the store operations. */
enum { KV_OK = 0, KV_NOMEM = -1 };

KV_INTERNAL const char *kv_type_name(int type);
KV_INTERNAL int64_t kv_now(void);

KV_INTERNAL kv_str *kv_str_new(const char *data, size_t len);

/* ---- hash table --------------------------------------------------------- */
KV_INTERNAL void kv_table_init(kv_table *t, const uint64_t seed[2]);
KV_INTERNAL uint64_t kv_hash(const kv_table *t, const char *data, size_t len);
/* The item stored under the key, or NULL. */
KV_INTERNAL void *kv_table_get(const kv_table *t, uint64_t hash, const char *data, size_t len);
/* Inserts an item whose key is not present; KV_OK or KV_NOMEM. */
KV_INTERNAL int kv_table_insert(kv_table *t, uint64_t hash, const kv_str *key, void *item);
/* Removes the key; returns its item, or NULL if absent. */
KV_INTERNAL void *kv_table_remove(kv_table *t, uint64_t hash, const char *data, size_t len);
/* Shrinks a table that has become sparse (best effort). */
KV_INTERNAL void kv_table_maybe_shrink(kv_table *t);
/* Frees the slot array only (not the items). */
KV_INTERNAL void kv_table_free(kv_table *t);

/* ---- the store ---------------------------------------------------------- */
KV_INTERNAL int kv_store_init(kv_store *s);
KV_INTERNAL void kv_store_free(kv_store *s);

/* The live entry for a key (expired entries are deleted first), or NULL. */
KV_INTERNAL kv_entry *kv_lookup(kv_store *s, const char *key, size_t klen, int64_t now);
/* A new empty entry of `type` for a key known to be absent; NULL on ENOMEM. */
KV_INTERNAL kv_entry *kv_create(kv_store *s, const char *key, size_t klen, int type);
/* Deletes a key of any type; 1 if it existed. */
KV_INTERNAL int kv_delete(kv_store *s, const char *key, size_t klen);
/* Drops the entry (which must be in the store). */
KV_INTERNAL void kv_delete_entry(kv_store *s, kv_entry *e);
/* Sets or clears an entry's deadline, keeping volatile_keys right. */
KV_INTERNAL void kv_set_deadline(kv_store *s, kv_entry *e, int64_t expires_at);
/* Examines up to `budget` slots from a rotating cursor, deleting expired keys. */
KV_INTERNAL void kv_sweep(kv_store *s, int64_t now, size_t budget);
/* Shrinks the key table if it became sparse; call outside of iterations. */
KV_INTERNAL void kv_compact(kv_store *s);

/* lists */
KV_INTERNAL int kv_list_push(kv_list *l, kv_str *item);
/* Removes every element equal to the value; returns how many were removed. */
KV_INTERNAL size_t kv_list_remove_all(kv_list *l, const char *data, size_t len);

/* sets: 1 added / removed, 0 not, KV_NOMEM */
KV_INTERNAL int kv_set_add(kv_table *set, const char *data, size_t len);
KV_INTERNAL int kv_set_remove(kv_table *set, const char *data, size_t len);
KV_INTERNAL int kv_set_contains(const kv_table *set, const char *data, size_t len);

#endif /* WASCC_KVSTORE_H */
