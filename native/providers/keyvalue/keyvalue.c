/*
 * keyvalue.c - wascc's first-party wascc:keyvalue provider: in memory, or on
 * Redis, chosen per bound actor by its binding's values.
 *
 * Backends.  An actor bound without `URL` uses the in-process store: every
 * __capability_provider_create makes an independent one (one per binding
 * registration), shared by all actors bound to that binding without a URL, as
 * with the original waSCC providers.  An actor bound with `URL` uses Redis
 * (kvredis.c, through hiredis), with its own connection pool:
 *   URL         redis://[user[:password]@]host[:port][/db]  (port 6379, db 0;
 *               %-escapes in user and password; [::1] for IPv6), or
 *               unix:///path/to/redis.sock[?db=N] (also redis+unix://).
 *   POOL_SIZE   connections in the pool, 1..256 (default 4).
 *   TIMEOUT_MS  bound on connecting, on each command and on waiting for a free
 *               connection, 1..600000 (default 5000).
 * BindActor connects and PINGs: an unparseable URL or an unreachable server
 * refuses the bind, naming the URL (its password masked) and the reason.  A
 * re-bind with the same values changes nothing; with other values the new
 * backend is set up first and the old pool released only once it works
 * (provider.h, section 2).  A Redis that goes away gives the actors errors
 * (the provider stays healthy) and is reconnected at the next call.
 *
 * The rules, the same on both backends (tests/test_keyvalue_conformance.py
 * runs one suite against both); where CONTRACTS section 3 is loose, the
 * original Redis provider's:
 *   Get        {value, exists}; a missing or expired key, or one holding a
 *              list or set, answers {value: "", exists: false}.
 *   Set        SET: overwrites a key of any type; answers {value}.  `expires`
 *              > 0 is a time to live in seconds (SET EX; in memory on
 *              CLOCK_MONOTONIC), 0 or absent removes any previous one, a
 *              negative value is refused.  The original Redis provider ignored
 *              `expires`: honouring it is a deliberate difference.
 *   Del, Clear DEL: delete a key of any type; both answer {key}.
 *   Add        INCRBY: a missing key counts as 0, a string must be a decimal
 *              integer (Redis rules: optional '-', no spaces, no leading
 *              zeros); the result must fit i32 (the reply type), else an error
 *              and the key is unchanged; a time to live is kept.
 *   Push       LPUSH: onto the head, so Range 0 -1 lists newest first;
 *              {newCount: the list's new length}.
 *   ListItemDelete  LREM key 0 value: removes every occurrence;
 *              {newCount: how many were removed}.
 *   Range      LRANGE: stop inclusive, negative indexes count from the end,
 *              out-of-range indexes are clamped, an empty range is [].
 *   SetAdd / SetRemove  SADD / SREM: {newCount: 1 if added/removed, else 0}.
 *   SetUnion / SetIntersection  a missing key is an empty set; no keys -> [].
 *   KeyExists  {value: "", exists} for a key of any type.
 *   A list or set that becomes empty is deleted (KeyExists then says false).
 *   Set members come back in no particular order.
 *   An operation meeting a key of the wrong type fails with
 *   "WRONGTYPE wascc:keyvalue <Op>: key '<key>' holds a <type>, not a <type>"
 *   and changes nothing (Get excepted, above).
 * Request fields that are optional: Set `expires` (0), Range `start` (0) and
 * `stop` (-1).  Unknown fields are ignored, str or bin is accepted for a
 * string, and bytes after the first msgpack value are ignored.  Strings are
 * binary-safe on both backends.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wascc/msgpack.h>
#include <wascc/provider.h>

#include "kvops.h"
#include "kvredis.h"
#include "kvstore.h"
#include "wpu.h"

#define KV_SWEEP_BUDGET 32 /* slots the expiry sweep examines per call */
#define KV_SHOW_KEY 64     /* bytes of a key quoted in an error message */
#define NS_PER_S 1000000000LL

/* An actor bound with a URL: its Redis pool and the values that made it. */
typedef struct {
    char *actor;
    char *config; /* "URL\nPOOL_SIZE\nTIMEOUT_MS" as given, to recognise a same-values re-bind */
    kv_redis *redis;
} kv_binding;

/* The provider's state, inside the skeleton's block (wpu.h).  The struct is
 * tagged: kvops.h's handlers take a struct kv_provider *. */
typedef struct kv_provider {
    pthread_mutex_t lock; /* the in-memory store */
    kv_store store;
    int stopped;                    /* __atomic; written under lock */
    pthread_rwlock_t bindings_lock; /* bindings, n_bindings */
    kv_binding *bindings;           /* only actors served by Redis */
    size_t n_bindings, cap_bindings;
} kv_provider;

/* ---- requests ----------------------------------------------------------- */

static const char *wmp_type_name(int type) {
    switch (type) {
    case WMP_NIL: return "nil";
    case WMP_BOOL: return "boolean";
    case WMP_INT: return "integer";
    case WMP_FLOAT: return "float";
    case WMP_STR: return "string";
    case WMP_BIN: return "binary";
    case WMP_ARRAY: return "array";
    case WMP_MAP: return "map";
    case WMP_EXT: return "extension";
    default: return "invalid msgpack";
    }
}

static int is_text(int type) { return type == WMP_STR || type == WMP_BIN; }

static int32_t bad_msgpack(const kv_op *op, uint8_t **out, size_t *out_len) {
    return wpu_error(out, out_len,
                     KV_CAPABILITY " %s: payload is not valid msgpack (malformed or truncated)",
                     op->name);
}

static int32_t bad_field(const kv_op *op, const char *field, const char *want, int got,
                         uint8_t **out, size_t *out_len) {
    if (got == WMP_INVALID) return bad_msgpack(op, out, out_len); /* truncated, 0xc1 */
    return wpu_error(out, out_len, KV_CAPABILITY " %s: field '%s' must be %s, got %s", op->name,
                     field, want, wmp_type_name(got));
}

static int32_t read_text(wmp_reader *r, const kv_op *op, const char *field, const char **s,
                         uint32_t *len, uint8_t **out, size_t *out_len) {
    int t = wmp_peek(r);
    if (!is_text(t)) return bad_field(op, field, "a string", t, out, out_len);
    if (!wmp_read_str(r, s, len)) return bad_msgpack(op, out, out_len);
    return WASCC_OK;
}

static int32_t read_integer(wmp_reader *r, const kv_op *op, const char *field, int64_t min,
                            int64_t max, int64_t *v, uint8_t **out, size_t *out_len) {
    int t = wmp_peek(r);
    if (t != WMP_INT) return bad_field(op, field, "an integer", t, out, out_len);
    if (!wmp_read_int(r, v) || *v < min || *v > max)
        return wpu_error(out, out_len,
                         KV_CAPABILITY " %s: field '%s' is out of range (%lld..%lld)", op->name,
                         field, (long long)min, (long long)max);
    return WASCC_OK;
}

/* Reads the op's fields from a msgpack map; an error names the op and field. */
static int32_t parse_request(const kv_op *op, const uint8_t *msg, size_t len, kv_request *r,
                             uint8_t **out, size_t *out_len) {
    memset(r, 0, sizeof *r);
    r->stop = -1;
    unsigned wanted = op->required | op->optional;
    wmp_reader rd;
    wmp_reader_init(&rd, msg, len);
    if (len == 0)
        return wpu_error(out, out_len,
                         KV_CAPABILITY " %s: empty payload; expected a msgpack map", op->name);
    int top = wmp_peek(&rd);
    if (top == WMP_INVALID) return bad_msgpack(op, out, out_len);
    if (top != WMP_MAP)
        return wpu_error(out, out_len, KV_CAPABILITY " %s: payload must be a msgpack map, got %s",
                         op->name, wmp_type_name(top));
    uint32_t fields;
    if (!wmp_read_map(&rd, &fields)) return bad_msgpack(op, out, out_len);
    for (uint32_t f = 0; f < fields; f++) {
        const char *name = NULL;
        uint32_t nl = 0;
        if (is_text(wmp_peek(&rd))) {
            if (!wmp_read_str(&rd, &name, &nl)) return bad_msgpack(op, out, out_len);
        } else if (!wmp_skip(&rd)) { /* a non-string map key names no field */
            return bad_msgpack(op, out, out_len);
        }
        unsigned field = 0;
        if (!name)
            field = 0;
        else if (wmp_eq(name, nl, "key"))
            field = F_KEY;
        else if (wmp_eq(name, nl, "value"))
            field = wanted & (F_VALUE | F_IVALUE);
        else if (wmp_eq(name, nl, "expires"))
            field = F_EXPIRES;
        else if (wmp_eq(name, nl, "start"))
            field = F_START;
        else if (wmp_eq(name, nl, "stop"))
            field = F_STOP;
        else if (wmp_eq(name, nl, "keys"))
            field = F_KEYS;
        field &= wanted;
        int32_t rc = WASCC_OK;
        switch (field) {
        case F_KEY:
            rc = read_text(&rd, op, "key", &r->key, &r->key_len, out, out_len);
            break;
        case F_VALUE:
            rc = read_text(&rd, op, "value", &r->value, &r->value_len, out, out_len);
            break;
        case F_IVALUE:
            rc = read_integer(&rd, op, "value", INT32_MIN, INT32_MAX, &r->ivalue, out, out_len);
            break;
        case F_EXPIRES:
            rc = read_integer(&rd, op, "expires", 0, INT32_MAX, &r->expires, out, out_len);
            break;
        case F_START:
            rc = read_integer(&rd, op, "start", INT64_MIN, INT64_MAX, &r->start, out, out_len);
            break;
        case F_STOP:
            rc = read_integer(&rd, op, "stop", INT64_MIN, INT64_MAX, &r->stop, out, out_len);
            break;
        case F_KEYS: {
            int t = wmp_peek(&rd);
            if (t != WMP_ARRAY)
                return bad_field(op, "keys", "an array of strings", t, out, out_len);
            if (!wmp_read_array(&rd, &r->n_keys)) return bad_msgpack(op, out, out_len);
            r->keys = rd;
            for (uint32_t i = 0; i < r->n_keys; i++) {
                const char *s;
                uint32_t sl;
                t = wmp_peek(&rd);
                if (t == WMP_INVALID) return bad_msgpack(op, out, out_len);
                if (!is_text(t))
                    return wpu_error(out, out_len,
                                     KV_CAPABILITY
                                     " %s: field 'keys' must be an array of strings, "
                                     "element %u is %s",
                                     op->name, i, wmp_type_name(t));
                if (!wmp_read_str(&rd, &s, &sl)) return bad_msgpack(op, out, out_len);
            }
            break;
        }
        default:
            if (!wmp_skip(&rd)) return bad_msgpack(op, out, out_len);
            continue;
        }
        if (rc != WASCC_OK) return rc;
        r->seen |= field;
    }
    static const struct {
        unsigned flag;
        const char *name;
    } names[] = {{F_KEY, "key"},     {F_VALUE, "value"}, {F_IVALUE, "value"},
                 {F_EXPIRES, "expires"}, {F_START, "start"}, {F_STOP, "stop"},
                 {F_KEYS, "keys"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((op->required & names[i].flag) && !(r->seen & names[i].flag))
            return wpu_error(out, out_len, KV_CAPABILITY " %s: missing field '%s'", op->name,
                             names[i].name);
    return WASCC_OK;
}

/* ---- replies and errors ------------------------------------------------- */

static int shown(size_t len) { return len > KV_SHOW_KEY ? KV_SHOW_KEY : (int)len; }

static const char *ellipsis(size_t len) { return len > KV_SHOW_KEY ? "..." : ""; }

int32_t kv_wrong_type(const kv_op *op, const char *key, size_t klen, const char *held,
                      const char *wanted, uint8_t **out, size_t *out_len) {
    return wpu_error(out, out_len,
                     "WRONGTYPE " KV_CAPABILITY " %s: key '%.*s%s' holds a %s, not a %s",
                     op->name, shown(klen), key, ellipsis(klen), held, wanted);
}

static int32_t wrong_type(const kv_op *op, const char *key, size_t klen, int have, int want,
                          uint8_t **out, size_t *out_len) {
    return kv_wrong_type(op, key, klen, kv_type_name(have), kv_type_name(want), out, out_len);
}

int32_t kv_not_an_integer(const kv_op *op, const char *key, size_t klen, uint8_t **out,
                          size_t *out_len) {
    return wpu_error(out, out_len,
                     KV_CAPABILITY " %s: key '%.*s%s' holds a string that is not an integer",
                     op->name, shown(klen), key, ellipsis(klen));
}

int32_t kv_add_overflow(const kv_op *op, const char *base, int64_t add, const char *key,
                        size_t klen, uint8_t **out, size_t *out_len) {
    return wpu_error(out, out_len,
                     KV_CAPABILITY " %s: %s + %lld does not fit an i32; key '%.*s%s' is unchanged",
                     op->name, base, (long long)add, shown(klen), key, ellipsis(klen));
}

static int32_t no_memory(const kv_op *op, uint8_t **out, size_t *out_len) {
    return wpu_error(out, out_len, KV_CAPABILITY " %s: out of memory", op->name);
}

int32_t kv_reply_value_exists(const char *value, size_t len, int exists, uint8_t **out,
                              size_t *out_len) {
    wmp_writer w;
    wpu_writer(&w);
    wmp_write_map(&w, 2);
    wmp_write_cstr(&w, "value");
    wmp_write_str(&w, value, len);
    wmp_write_cstr(&w, "exists");
    wmp_write_bool(&w, exists);
    return wpu_finish(&w, out, out_len);
}

int32_t kv_reply_one_str(const char *field, const char *s, size_t len, uint8_t **out,
                         size_t *out_len) {
    wmp_writer w;
    wpu_writer(&w);
    wmp_write_map(&w, 1);
    wmp_write_cstr(&w, field);
    wmp_write_str(&w, s, len);
    return wpu_finish(&w, out, out_len);
}

int32_t kv_reply_one_int(const char *field, int64_t v, uint8_t **out, size_t *out_len) {
    wmp_writer w;
    wpu_writer(&w);
    wmp_write_map(&w, 1);
    wmp_write_cstr(&w, field);
    wmp_write_int(&w, v);
    return wpu_finish(&w, out, out_len);
}

/* {values: [...]} from an array of strings, from items[0] up, or from
 * items[n - 1] down when `backwards` (a list is stored oldest first). */
static int32_t reply_values(kv_str *const *items, size_t n, int backwards, uint8_t **out,
                            size_t *out_len) {
    if (n > UINT32_MAX) return wpu_error(out, out_len, KV_CAPABILITY ": reply too large");
    wmp_writer w;
    wpu_writer(&w);
    wmp_write_map(&w, 1);
    wmp_write_cstr(&w, "values");
    wmp_write_array(&w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        const kv_str *item = items[backwards ? n - 1 - i : i];
        wmp_write_str(&w, item->data, item->len);
    }
    return wpu_finish(&w, out, out_len);
}

/* {values: [...]} from the members of a set (item == key in a set table). */
static int32_t reply_set(const kv_table *set, uint8_t **out, size_t *out_len) {
    if (set->count > UINT32_MAX) return wpu_error(out, out_len, KV_CAPABILITY ": reply too large");
    wmp_writer w;
    wpu_writer(&w);
    wmp_write_map(&w, 1);
    wmp_write_cstr(&w, "values");
    wmp_write_array(&w, (uint32_t)set->count);
    for (size_t i = 0; i < set->cap; i++)
        if (set->slots[i].key) wmp_write_str(&w, set->slots[i].key->data, set->slots[i].key->len);
    return wpu_finish(&w, out, out_len);
}

/* Redis string2ll rules: "0", or an optional '-' and digits without a leading 0. */
static int parse_i64(const char *s, size_t len, int64_t *out) {
    if (len == 0 || len > 20) return 0;
    if (len == 1 && s[0] == '0') {
        *out = 0;
        return 1;
    }
    size_t i = 0;
    int neg = s[0] == '-';
    if (neg) i++;
    if (i >= len || s[i] < '1' || s[i] > '9') return 0;
    uint64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) return 0;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX) return 0;
        *out = (int64_t)v;
    }
    return 1;
}

/* ---- operations (called with the store locked) -------------------------- */

static int32_t op_get(kv_provider *p, const kv_op *op, const kv_request *r, int64_t now,
                      uint8_t **out, size_t *out_len) {
    kv_entry *e = kv_lookup(&p->store, r->key, r->key_len, now);
    (void)op;
    if (!e || e->type != KV_STRING) /* missing, or not a string: as the original */
        return kv_reply_value_exists("", 0, 0, out, out_len);
    return kv_reply_value_exists(e->v.str->data, e->v.str->len, 1, out, out_len);
}

static int32_t op_set(kv_provider *p, const kv_op *op, const kv_request *r, int64_t now,
                      uint8_t **out, size_t *out_len) {
    kv_str *value = kv_str_new(r->value, r->value_len);
    if (!value) return no_memory(op, out, out_len);
    kv_entry *e = kv_lookup(&p->store, r->key, r->key_len, now);
    if (e && e->type != KV_STRING) { /* SET replaces a key of any type */
        kv_delete_entry(&p->store, e);
        e = NULL;
    }
    if (!e) {
        e = kv_create(&p->store, r->key, r->key_len, KV_STRING);
        if (!e) {
            free(value);
            return no_memory(op, out, out_len);
        }
    }
    free(e->v.str);
    e->v.str = value;
    kv_set_deadline(&p->store, e, r->expires > 0 ? now + r->expires * NS_PER_S : 0);
    return kv_reply_one_str("value", r->value, r->value_len, out, out_len);
}

static int32_t op_del(kv_provider *p, const kv_op *op, const kv_request *r, int64_t now,
                      uint8_t **out, size_t *out_len) {
    (void)op;
    (void)now;
    kv_delete(&p->store, r->key, r->key_len);
    return kv_reply_one_str("key", r->key, r->key_len, out, out_len);
}

static int32_t op_clear(kv_provider *p, const kv_op *op, const kv_request *r, int64_t now,
                        uint8_t **out, size_t *out_len) {
    (void)op;
    (void)now;
    kv_delete(&p->store, r->key, r->key_len);
    return kv_reply_one_str("key", r->key, r->key_len, out, out_len);
}

static int32_t op_add(kv_provider *p, const kv_op *op, const kv_request *r, int64_t now,
                      uint8_t **out, size_t *out_len) {
    kv_entry *e = kv_lookup(&p->store, r->key, r->key_len, now);
    int64_t base = 0, sum;
    if (e) {
        if (e->type != KV_STRING)
            return wrong_type(op, r->key, r->key_len, e->type, KV_STRING, out, out_len);
        if (!parse_i64(e->v.str->data, e->v.str->len, &base))
            return kv_not_an_integer(op, r->key, r->key_len, out, out_len);
    }
    if (__builtin_add_overflow(base, r->ivalue, &sum) || sum < INT32_MIN || sum > INT32_MAX) {
        char text[24];
        snprintf(text, sizeof text, "%lld", (long long)base);
        return kv_add_overflow(op, text, r->ivalue, r->key, r->key_len, out, out_len);
    }
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%lld", (long long)sum);
    kv_str *value = kv_str_new(digits, (size_t)n);
    if (!value) return no_memory(op, out, out_len);
    if (!e) {
        e = kv_create(&p->store, r->key, r->key_len, KV_STRING);
        if (!e) {
            free(value);
            return no_memory(op, out, out_len);
        }
    }
    free(e->v.str);
    e->v.str = value; /* a time to live, if any, is kept (as Redis INCRBY) */
    return kv_reply_one_int("value", sum, out, out_len);
}

/* The entry of `type` for the key, created empty if absent (*created set). */
static kv_entry *get_or_create(kv_provider *p, const kv_op *op, const kv_request *r, int64_t now,
                               int type, int *created, int32_t *rc, uint8_t **out,
                               size_t *out_len) {
    *created = 0;
    kv_entry *e = kv_lookup(&p->store, r->key, r->key_len, now);
    if (e && e->type != type) {
        *rc = wrong_type(op, r->key, r->key_len, e->type, type, out, out_len);
        return NULL;
    }
    if (!e) {
        e = kv_create(&p->store, r->key, r->key_len, type);
        if (!e) {
            *rc = no_memory(op, out, out_len);
            return NULL;
        }
        *created = 1;
    }
    return e;
}

static int32_t op_push(kv_provider *p, const kv_op *op, const kv_request *r, int64_t now,
                       uint8_t **out, size_t *out_len) {
    int created;
    int32_t rc = WASCC_OK;
    kv_entry *e = get_or_create(p, op, r, now, KV_LIST, &created, &rc, out, out_len);
    if (!e) return rc;
    kv_str *item = kv_str_new(r->value, r->value_len);
    if (!item || kv_list_push(&e->v.list, item) != KV_OK) {
        free(item);
        if (created) kv_delete_entry(&p->store, e);
        return no_memory(op, out, out_len);
    }
    return kv_reply_one_int("newCount", (int64_t)e->v.list.len, out, out_len);
}

static int32_t op_list_item_delete(kv_provider *p, const kv_op *op, const kv_request *r,
                                   int64_t now, uint8_t **out, size_t *out_len) {
    kv_entry *e = kv_lookup(&p->store, r->key, r->key_len, now);
    if (!e) return kv_reply_one_int("newCount", 0, out, out_len);
    if (e->type != KV_LIST)
        return wrong_type(op, r->key, r->key_len, e->type, KV_LIST, out, out_len);
    size_t removed = kv_list_remove_all(&e->v.list, r->value, r->value_len);
    if (e->v.list.len == 0) kv_delete_entry(&p->store, e);
    return kv_reply_one_int("newCount", (int64_t)removed, out, out_len); /* as LREM */
}

static int32_t op_range(kv_provider *p, const kv_op *op, const kv_request *r, int64_t now,
                        uint8_t **out, size_t *out_len) {
    kv_entry *e = kv_lookup(&p->store, r->key, r->key_len, now);
    if (!e) return reply_values(NULL, 0, 0, out, out_len);
    if (e->type != KV_LIST)
        return wrong_type(op, r->key, r->key_len, e->type, KV_LIST, out, out_len);
    /* LRANGE: negative indexes count from the end; clamp; stop is inclusive */
    int64_t n = (int64_t)e->v.list.len;
    int64_t start = r->start, stop = r->stop;
    if (start < 0) start = start < -n ? 0 : start + n;
    if (stop < 0) stop = stop < -n ? -1 : stop + n;
    if (stop >= n) stop = n - 1;
    if (start >= n || start > stop) return reply_values(NULL, 0, 0, out, out_len);
    /* the list is stored oldest first and read newest first (LPUSH order):
     * logical index i is items[n - 1 - i] */
    return reply_values(e->v.list.items + (n - 1 - stop), (size_t)(stop - start + 1), 1, out,
                        out_len);
}

static int32_t op_set_add(kv_provider *p, const kv_op *op, const kv_request *r, int64_t now,
                          uint8_t **out, size_t *out_len) {
    int created;
    int32_t rc = WASCC_OK;
    kv_entry *e = get_or_create(p, op, r, now, KV_SET, &created, &rc, out, out_len);
    if (!e) return rc;
    int added = kv_set_add(&e->v.set, r->value, r->value_len);
    if (added == KV_NOMEM) {
        if (created) kv_delete_entry(&p->store, e);
        return no_memory(op, out, out_len);
    }
    return kv_reply_one_int("newCount", added, out, out_len); /* as SADD */
}

static int32_t op_set_remove(kv_provider *p, const kv_op *op, const kv_request *r, int64_t now,
                             uint8_t **out, size_t *out_len) {
    kv_entry *e = kv_lookup(&p->store, r->key, r->key_len, now);
    if (!e) return kv_reply_one_int("newCount", 0, out, out_len);
    if (e->type != KV_SET) return wrong_type(op, r->key, r->key_len, e->type, KV_SET, out, out_len);
    int removed = kv_set_remove(&e->v.set, r->value, r->value_len);
    if (e->v.set.count == 0) kv_delete_entry(&p->store, e);
    return kv_reply_one_int("newCount", removed, out, out_len); /* as SREM */
}

static int32_t op_set_query(kv_provider *p, const kv_op *op, const kv_request *r, int64_t now,
                            uint8_t **out, size_t *out_len) {
    kv_entry *e = kv_lookup(&p->store, r->key, r->key_len, now);
    if (!e) return reply_values(NULL, 0, 0, out, out_len);
    if (e->type != KV_SET) return wrong_type(op, r->key, r->key_len, e->type, KV_SET, out, out_len);
    return reply_set(&e->v.set, out, out_len);
}

/* Looks up every key of `keys` (each must be a set or missing) into sets[]. */
static int32_t collect_sets(kv_provider *p, const kv_op *op, const kv_request *r, int64_t now,
                            kv_entry ***sets, uint8_t **out, size_t *out_len) {
    *sets = calloc(r->n_keys ? r->n_keys : 1, sizeof **sets);
    if (!*sets) return no_memory(op, out, out_len);
    wmp_reader rd = r->keys;
    for (uint32_t i = 0; i < r->n_keys; i++) {
        const char *k = NULL;
        uint32_t kl = 0;
        wmp_read_str(&rd, &k, &kl); /* validated by parse_request */
        kv_entry *e = kv_lookup(&p->store, k, kl, now);
        if (e && e->type != KV_SET) {
            free(*sets);
            *sets = NULL;
            return wrong_type(op, k, kl, e->type, KV_SET, out, out_len);
        }
        (*sets)[i] = e;
    }
    return WASCC_OK;
}

static int32_t op_set_union(kv_provider *p, const kv_op *op, const kv_request *r, int64_t now,
                            uint8_t **out, size_t *out_len) {
    kv_entry **sets;
    int32_t rc = collect_sets(p, op, r, now, &sets, out, out_len);
    if (rc != WASCC_OK) return rc;
    /* a scratch set of borrowed members (item == key; nothing to free but slots) */
    kv_table acc;
    kv_table_init(&acc, p->store.keys.seed);
    for (uint32_t i = 0; i < r->n_keys && rc == WASCC_OK; i++) {
        if (!sets[i]) continue;
        const kv_table *s = &sets[i]->v.set;
        for (size_t j = 0; j < s->cap; j++) {
            const kv_str *m = s->slots[j].key;
            if (!m) continue;
            uint64_t h = s->slots[j].hash; /* same seed, same hash */
            if (kv_table_get(&acc, h, m->data, m->len)) continue;
            if (kv_table_insert(&acc, h, m, (void *)m) != KV_OK) {
                rc = no_memory(op, out, out_len);
                break;
            }
        }
    }
    if (rc == WASCC_OK) rc = reply_set(&acc, out, out_len);
    kv_table_free(&acc);
    free(sets);
    return rc;
}

static int32_t op_set_intersection(kv_provider *p, const kv_op *op, const kv_request *r,
                                   int64_t now, uint8_t **out, size_t *out_len) {
    kv_entry **sets;
    int32_t rc = collect_sets(p, op, r, now, &sets, out, out_len);
    if (rc != WASCC_OK) return rc;
    const kv_table *smallest = NULL;
    for (uint32_t i = 0; i < r->n_keys; i++) {
        if (!sets[i]) { /* a missing key is an empty set */
            smallest = NULL;
            break;
        }
        if (!smallest || sets[i]->v.set.count < smallest->count) smallest = &sets[i]->v.set;
    }
    kv_str **found = NULL;
    size_t n = 0;
    if (smallest) {
        found = malloc((smallest->count ? smallest->count : 1) * sizeof *found);
        if (!found) {
            free(sets);
            return no_memory(op, out, out_len);
        }
        for (size_t j = 0; j < smallest->cap; j++) {
            const kv_str *m = smallest->slots[j].key;
            if (!m) continue;
            int everywhere = 1;
            for (uint32_t i = 0; i < r->n_keys && everywhere; i++)
                if (&sets[i]->v.set != smallest)
                    everywhere = kv_set_contains(&sets[i]->v.set, m->data, m->len);
            if (everywhere) found[n++] = (kv_str *)m;
        }
    }
    rc = reply_values(found, n, 0, out, out_len);
    free(found);
    free(sets);
    return rc;
}

static int32_t op_key_exists(kv_provider *p, const kv_op *op, const kv_request *r, int64_t now,
                             uint8_t **out, size_t *out_len) {
    (void)op;
    kv_entry *e = kv_lookup(&p->store, r->key, r->key_len, now);
    return kv_reply_value_exists("", 0, e != NULL, out, out_len);
}

/* The operations, in one list: it makes both the handler table and the
 * descriptor's operations, in the same order (the skeleton passes the index).
 * Each has its in-memory and its Redis handler. */
#define KV_OPS(X)                                                                              \
    X("Get", op_get, kvr_get, F_KEY, 0,                                                        \
      "Gets the string value of a key: {key} -> {value, exists}; a missing or expired key, "   \
      "or one holding a list or set, answers {value: \"\", exists: false}")                    \
    X("Set", op_set, kvr_set, F_KEY | F_VALUE, F_EXPIRES,                                      \
      "Sets the string value of a key, replacing any type: {key, value, expires} -> {value}; " \
      "expires is a time to live in seconds, 0 = never")                                       \
    X("Del", op_del, kvr_del, F_KEY, 0, "Deletes a key of any type: {key} -> {key}")           \
    X("Add", op_add, kvr_add, F_KEY | F_IVALUE, 0,                                             \
      "Atomically adds an i32 to the integer in a key (a missing key counts as 0): "           \
      "{key, value} -> {value}")                                                               \
    X("Push", op_push, kvr_push, F_KEY | F_VALUE, 0,                                           \
      "Pushes a value onto the head of a list (Redis LPUSH: newest first in Range 0 -1): "     \
      "{key, value} -> {newCount: the list's new length}")                                     \
    X("ListItemDelete", op_list_item_delete, kvr_list_item_delete, F_KEY | F_VALUE, 0,         \
      "Removes every occurrence of a value from a list (Redis LREM key 0 value): "             \
      "{key, value} -> {newCount: how many were removed}")                                     \
    X("Range", op_range, kvr_range, F_KEY, F_START | F_STOP,                                   \
      "Selects list items from start to stop inclusive, negative indexes counting from the "   \
      "end (Redis LRANGE): {key, start, stop} -> {values}")                                    \
    X("Clear", op_clear, kvr_del, F_KEY, 0,                                                    \
      "Deletes a list (or a key of any type; Redis DEL): {key} -> {key}")                      \
    X("SetAdd", op_set_add, kvr_set_add, F_KEY | F_VALUE, 0,                                   \
      "Adds a member to a set (Redis SADD): {key, value} -> {newCount: 1 if added, else 0}")   \
    X("SetRemove", op_set_remove, kvr_set_remove, F_KEY | F_VALUE, 0,                          \
      "Removes a member from a set (Redis SREM): {key, value} -> {newCount: 1 if removed, "    \
      "else 0}")                                                                               \
    X("SetUnion", op_set_union, kvr_set_union, F_KEYS, 0,                                      \
      "Returns the union of the sets at keys: {keys} -> {values}")                             \
    X("SetIntersection", op_set_intersection, kvr_set_intersection, F_KEYS, 0,                 \
      "Returns the intersection of the sets at keys: {keys} -> {values}")                      \
    X("SetQuery", op_set_query, kvr_set_query, F_KEY, 0,                                       \
      "Returns the members of a set: {key} -> {values}")                                       \
    X("KeyExists", op_key_exists, kvr_key_exists, F_KEY, 0,                                    \
      "Tells whether a key of any type exists: {key} -> {value: \"\", exists}")

#define KV_HANDLER(name, mem, redis, required, optional, doctext)                              \
    {name, mem, redis, required, optional, doctext},
#define KV_OPERATION(name, mem, redis, required, optional, doctext)                            \
    {name, 1 /* to_provider */, doctext},

static const kv_op kv_ops[] = {KV_OPS(KV_HANDLER)};
static const wpu_operation KV_OPERATIONS[] = {KV_OPS(KV_OPERATION)};

static const wpu_descriptor_t KV_DESCRIPTOR = {
    .id = KV_CAPABILITY,
    .name = "wascc In-Memory and Redis Key-Value Provider (native)",
    .version = "0.2.0",
    .revision = 2,
    .long_description =
        "Strings, lists, sets and expiry, in C: in process (one key space per binding, "
        "shared by the actors bound to it), or on Redis for an actor whose binding has "
        "a URL (one connection pool per bound actor, through hiredis).",
    .operations = KV_OPERATIONS,
    .n_operations = sizeof KV_OPERATIONS / sizeof KV_OPERATIONS[0],
};

/* ---- bindings ----------------------------------------------------------- */

/* The binding of an actor served by Redis, or NULL; bindings_lock held. */
static kv_binding *find_binding(kv_provider *p, const char *actor) {
    for (size_t i = 0; i < p->n_bindings; i++)
        if (strcmp(p->bindings[i].actor, actor) == 0) return &p->bindings[i];
    return NULL;
}

/* bindings_lock held for writing (or the provider being destroyed). */
static void drop_binding(kv_provider *p, kv_binding *b) {
    kvr_unref(b->redis);
    free(b->actor);
    free(b->config);
    *b = p->bindings[--p->n_bindings];
}

/* BindActor: a URL selects Redis (connected now: an unparseable URL or an
 * unreachable server refuses the bind), no URL the in-memory store.  A
 * re-bind with other values sets up the new backend first and releases the
 * old one only once the new one works (provider.h, section 2). */
static int32_t kv_bind(void *state, const wpu_config *cfg, uint8_t **out, size_t *out_len) {
    kv_provider *p = state;
    const char *url = wpu_config_get(cfg, "URL");
    const char *pool = wpu_config_get(cfg, "POOL_SIZE");
    const char *timeout = wpu_config_get(cfg, "TIMEOUT_MS");
    if (url && !url[0]) url = NULL;
    char *config = NULL;
    if (url) {
        size_t n = strlen(url) + (pool ? strlen(pool) : 0) + (timeout ? strlen(timeout) : 0) + 8;
        config = malloc(n);
        if (!config) return wpu_error(out, out_len, KV_CAPABILITY " BindActor: out of memory");
        snprintf(config, n, "%s\n%s\n%s", url, pool ? pool : "-", timeout ? timeout : "-");
    }
    pthread_rwlock_rdlock(&p->bindings_lock);
    kv_binding *old = find_binding(p, cfg->module);
    int same = old ? config && strcmp(old->config, config) == 0 : !config;
    pthread_rwlock_unlock(&p->bindings_lock);
    if (same) { /* the same values: idempotent */
        free(config);
        return wpu_empty(out, out_len);
    }
    kv_redis *redis = NULL;
    if (url) {
        char *err = NULL;
        redis = kvr_open(url, pool, timeout, &err);
        if (!redis) {
            int32_t rc = wpu_error(out, out_len, KV_CAPABILITY " BindActor for actor %s: %s",
                                   cfg->module, err ? err : "out of memory");
            free(err);
            free(config);
            return rc;
        }
    }
    char *actor = redis ? strdup(cfg->module) : NULL;
    pthread_rwlock_wrlock(&p->bindings_lock);
    int grow = redis && !find_binding(p, cfg->module) && p->n_bindings == p->cap_bindings;
    kv_binding *grown = NULL;
    if (grow) {
        size_t cap = p->cap_bindings ? p->cap_bindings * 2 : 4;
        grown = realloc(p->bindings, cap * sizeof *grown);
        if (grown) {
            p->bindings = grown;
            p->cap_bindings = cap;
        }
    }
    if (redis && (!actor || (grow && !grown))) {
        pthread_rwlock_unlock(&p->bindings_lock);
        kvr_unref(redis);
        free(actor);
        free(config);
        return wpu_error(out, out_len, KV_CAPABILITY " BindActor: out of memory");
    }
    kv_binding *b = find_binding(p, cfg->module);
    kv_redis *released = NULL;
    if (b && redis) { /* Redis -> other Redis values */
        released = b->redis;
        free(b->config);
        free(actor);
        b->redis = redis;
        b->config = config;
    } else if (b) { /* Redis -> in memory */
        drop_binding(p, b);
    } else if (redis) { /* in memory -> Redis */
        p->bindings[p->n_bindings++] = (kv_binding){actor, config, redis};
    }
    pthread_rwlock_unlock(&p->bindings_lock);
    kvr_unref(released); /* freed when its last call returns */
    return wpu_empty(out, out_len);
}

/* RemoveActor: an actor served by Redis gives its pool back (freed when its
 * last call returns); an in-memory one keeps nothing per actor. */
static int32_t kv_remove(void *state, const wpu_config *cfg, uint8_t **out, size_t *out_len) {
    kv_provider *p = state;
    pthread_rwlock_wrlock(&p->bindings_lock);
    kv_binding *b = find_binding(p, cfg->module);
    if (b) drop_binding(p, b);
    pthread_rwlock_unlock(&p->bindings_lock);
    return wpu_empty(out, out_len);
}

/* Healthy even while a Redis is down (its actors get errors, the provider
 * lives on) and after stop, as before the skeleton. */
static int32_t kv_health(void *state, uint8_t **out, size_t *out_len) {
    (void)state;
    return wpu_health(out, out_len, 1, "");
}

/* ---- the provider (the ABI glue is wpu.h's skeleton) --------------------- */

static int32_t kv_call(void *state, const wpu_call *call, uint8_t **out, size_t *out_len) {
    kv_provider *p = state;
    const kv_op *found = &kv_ops[call->index];
    kv_request req;
    int32_t rc = parse_request(found, call->msg, call->len, &req, out, out_len);
    if (rc != WASCC_OK) return rc;
    kv_redis *redis = NULL;
    if (__atomic_load_n(&p->n_bindings, __ATOMIC_ACQUIRE)) {
        pthread_rwlock_rdlock(&p->bindings_lock);
        kv_binding *b = find_binding(p, call->actor);
        if (b) {
            redis = b->redis;
            kvr_ref(redis);
        }
        pthread_rwlock_unlock(&p->bindings_lock);
    }
    if (redis) {
        if (__atomic_load_n(&p->stopped, __ATOMIC_ACQUIRE))
            rc = wpu_error(out, out_len, KV_CAPABILITY " %s: the provider is stopped",
                           found->name);
        else
            rc = kvr_run(redis, found, &req, out, out_len);
        kvr_unref(redis);
        return rc;
    }
    pthread_mutex_lock(&p->lock);
    if (p->stopped) {
        rc = wpu_error(out, out_len, KV_CAPABILITY " %s: the provider is stopped", found->name);
    } else {
        int64_t now = kv_now();
        kv_sweep(&p->store, now, KV_SWEEP_BUDGET);
        rc = found->mem(p, found, &req, now, out, out_len);
        kv_compact(&p->store);
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

static int kv_init(void *state) {
    kv_provider *p = state;
    if (pthread_mutex_init(&p->lock, NULL) != 0) return -1;
    if (pthread_rwlock_init(&p->bindings_lock, NULL) != 0) {
        pthread_mutex_destroy(&p->lock);
        return -1;
    }
    kv_store_init(&p->store);
    return 0;
}

static void kv_stop(void *state) {
    kv_provider *p = state;
    pthread_mutex_lock(&p->lock);
    __atomic_store_n(&p->stopped, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&p->lock);
}

static void kv_destroy(void *state) {
    kv_provider *p = state;
    while (p->n_bindings) drop_binding(p, &p->bindings[0]);
    free(p->bindings);
    pthread_rwlock_destroy(&p->bindings_lock);
    kv_store_free(&p->store);
    pthread_mutex_destroy(&p->lock);
}

static const wpu_provider_def KV_PROVIDER = {
    .descriptor = &KV_DESCRIPTOR,
    .state_size = sizeof(kv_provider),
    .init = kv_init,
    .bind = kv_bind,
    .remove = kv_remove,
    .health = kv_health,
    .call = kv_call,
    .stop = kv_stop,
    .destroy = kv_destroy,
};

WPU_PROVIDER(KV_PROVIDER)
