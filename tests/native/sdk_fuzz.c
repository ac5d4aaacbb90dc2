/*
 * sdk_fuzz - runs every decoder of the C guest SDK over hostile payloads.
 *
 * Built by tests/test_sdk.py with
 *     gcc -fsanitize=address,undefined -fno-sanitize-recover=all -g -O1 -I native/include
 * and fed, on stdin, frames of (4-byte little-endian length, bytes), repeated.
 * Each payload is copied into a heap block of exactly its length, so a read one
 * byte past the end is an AddressSanitizer report (and a non-zero exit).
 *
 * Only the freestanding headers are included (actor.h imports waPC functions
 * that exist only inside a wasm host).
 *
 * Output: one line per payload,
 *     <index> req=<0|1> [rm= rp= rq= rh= rhs= rct= rbl= rrt=] resp=<0|1> [...] kv=... bm=...
 *     gen=... tel=... fc=... blob=... bl=... rs=... (blobstore and graphdb)
 *     skip=<bytes consumed by wmp_skip, or -1> seq=<values>:<bytes> (wmp_skip
 *     repeated over the whole input) json=<len>:<crc32>
 * where strings are percent-encoded (every byte outside [0-9A-Za-z._~/:-])
 * and hashes are CRC-32 (zlib's) in hex; then one summary line
 *     SUMMARY payloads=N req=.. resp=.. kv=.. bm=.. gen=.. tel=.. fc=.. blob=.. bl=.. rs=..
 *     skip=.. json_bytes=..
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wascc/contracts.h"
#include "wascc/json.h"
#include "wascc/msgpack.h"

/* CRC-32 (zlib's; chains like zlib.crc32(data, previous)). */
static uint32_t crc(uint32_t c, const void *data, size_t n) {
    const uint8_t *p = (const uint8_t *)data;
    c = ~c;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0xedb88320u : c >> 1;
    }
    return ~c;
}

static void put_str(const char *key, const void *data, size_t n) {
    const uint8_t *p = (const uint8_t *)data;
    printf(" %s=", key);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
            c == '.' || c == '_' || c == '~' || c == '/' || c == ':' || c == '-')
            putchar(c);
        else
            printf("%%%02X", c);
    }
}

static void put_wstr(const char *key, wascc_str s) { put_str(key, s.p, s.n); }

/* realloc semantics, as msgpack.h's wmp_grow_fn asks. */
static void *grow(void *ctx, void *old, size_t cap) {
    (void)ctx;
    return realloc(old, cap);
}

struct totals {
    unsigned long payloads, req, resp, kv, bm, gen, tel, fc, blob, bl, rs, skip;
    unsigned long long json_bytes;
};

/* Iterates a header map both ways (next and get); prints count and hash. */
static void walk_headers(const wascc_map *m, const char *count_key, const char *hash_key,
                         const char *ct_key) {
    wascc_map_iter it;
    wascc_str k, v;
    uint32_t h = 0;
    unsigned long n = 0;
    wascc_map_begin(m, &it);
    while (wascc_map_next(&it, &k, &v) == 0) {
        h = crc(h, k.p, k.n);
        h = crc(h, "", 1);
        h = crc(h, v.p, v.n);
        h = crc(h, "", 1);
        n++;
        /* every key must be found again by name (case-insensitively) */
        char name[64];
        if (k.n < sizeof name) {
            int has_nul = 0;
            for (uint32_t i = 0; i < k.n; i++) has_nul |= k.p[i] == 0;
            memcpy(name, k.p, k.n);
            name[k.n] = 0;
            wascc_str found;
            if (!has_nul && wascc_map_get(m, name, &found) != 0) {
                fprintf(stderr, "wascc_map_get lost a key the iterator returned\n");
                abort();
            }
        }
    }
    if (n != m->count) {
        fprintf(stderr, "iterated %lu pairs of a map of %u\n", n, (unsigned)m->count);
        abort();
    }
    printf(" %s=%lu %s=%08x", count_key, n, hash_key, (unsigned)h);
    wascc_str ct;
    if (wascc_map_get(m, "content-type", &ct) == 0) put_wstr(ct_key, ct);
    else printf(" %s=-", ct_key);
    /* lookups of absent names, and names longer than any key, must just fail */
    if (wascc_map_get(m, "x-absent-header-name-that-no-test-uses", &ct) == 0) {
        fprintf(stderr, "found a header that was never sent\n");
        abort();
    }
    wascc_map_get(m, "", &ct);
}

static int same_str(wascc_str a, wascc_str b) { return a.n == b.n && !memcmp(a.p, b.p, a.n); }

/* Encodes a decoded request and decodes the result again: same fields? */
static int request_round_trip(const wascc_http_request *q) {
    wmp_writer w;
    wmp_writer_init(&w, NULL, 0, grow, NULL);
    wascc_http_request_write(&w, q);
    int ok = 0;
    if (!w.err) {
        wascc_http_request q2;
        ok = wascc_http_request_decode(w.buf, w.len, &q2) == 0 &&
             same_str(q->method, q2.method) && same_str(q->path, q2.path) &&
             same_str(q->query_string, q2.query_string) && q->header.count == q2.header.count &&
             /* an absent header map is written as an empty one */
             (q->header.count == 0 || (q->header.len == q2.header.len &&
                                        !memcmp(q->header.at, q2.header.at, q->header.len))) &&
             q->body_len == q2.body_len &&
             (q->body_len == 0 || !memcmp(q->body, q2.body, q->body_len));
    }
    free(w.buf);
    return ok;
}

/* The blobstore and graphdb decoders: fc= (FileChunk), blob=, bl= (BlobList), rs=. */
static void run_data(const uint8_t *data, size_t len, struct totals *t) {
    wascc_file_chunk c;
    if (wascc_file_chunk_decode(data, len, &c) == 0) {
        t->fc++;
        printf(" fc=1 fseq=%llu ftot=%llu fcs=%llu", (unsigned long long)c.sequence_no,
               (unsigned long long)c.total_bytes, (unsigned long long)c.chunk_size);
        put_wstr("fcont", c.container);
        put_wstr("fid", c.id);
        put_wstr("fctx", c.context);
        printf(" fbl=%u fbh=%08x", (unsigned)c.bytes_len, (unsigned)crc(0, c.bytes, c.bytes_len));
    } else {
        printf(" fc=0");
    }

    wascc_blob b;
    if (wascc_blob_decode(data, len, &b) == 0) {
        t->blob++;
        printf(" blob=1");
        put_wstr("bid", b.id);
        put_wstr("bcont", b.container);
        printf(" bsz=%llu bnone=%d", (unsigned long long)b.byte_size, wascc_blob_is_none(&b));
    } else {
        printf(" blob=0");
    }

    wascc_blob_list l;
    if (wascc_blob_list_decode(data, len, &l) == 0) {
        t->bl++;
        uint32_t h = 0;
        unsigned long found = 0;
        for (uint64_t i = 0; i <= (uint64_t)l.count + 1; i++) {
            wascc_blob item;
            if (wascc_blob_list_at(&l, (uint32_t)i, &item) == 0) {
                if (i >= l.count) abort();
                found++;
                h = crc(h, item.id.p, item.id.n);
                h = crc(h, "", 1);
            }
        }
        printf(" bl=1 bln=%u blat=%lu blh=%08x", (unsigned)l.count, found, (unsigned)h);
    } else {
        printf(" bl=0");
    }

    wascc_result_set rs;
    if (wascc_result_set_decode(data, len, &rs) == 0) {
        t->rs++;
        uint32_t h = 0;
        unsigned long scalars = 0;
        for (uint64_t i = 0; i <= (uint64_t)rs.n_columns + 1; i++) {
            wascc_column col;
            if (wascc_result_set_column(&rs, (uint32_t)i, &col) != 0) continue;
            if (i >= rs.n_columns) abort();
            h = crc(h, &col.kind, 1);
            for (uint64_t j = 0; j <= (uint64_t)col.count + 1; j++) {
                wascc_scalar sc;
                if (wascc_column_scalar(&col, (uint32_t)j, &sc) != 0) continue;
                if (j >= col.count) abort();
                scalars++;
                uint8_t text[64];
                int64_t n = wascc_scalar_text(&sc, text, sizeof text);
                if (n > (int64_t)sizeof text) abort();
                if (n >= 0) h = crc(h, text, (size_t)n);
                else if (sc.kind == WASCC_SCALAR_INT) h = crc(h, &sc.integer, sizeof sc.integer);
            }
        }
        printf(" rs=1 rsc=%u rss=%lu rsh=%08x", (unsigned)rs.n_columns, scalars, (unsigned)h);
    } else {
        printf(" rs=0");
    }
}

static void run(const uint8_t *data, size_t len, struct totals *t) {
    printf("%lu", t->payloads);
    t->payloads++;

    wascc_http_request q;
    if (wascc_http_request_decode(data, len, &q) == 0) {
        t->req++;
        printf(" req=1");
        put_wstr("rm", q.method);
        put_wstr("rp", q.path);
        put_wstr("rq", q.query_string);
        walk_headers(&q.header, "rh", "rhs", "rct");
        printf(" rbl=%u rbh=%08x rrt=%d", (unsigned)q.body_len,
               (unsigned)crc(0, q.body, q.body_len), request_round_trip(&q));
    } else {
        printf(" req=0");
        /* whatever a failed decode left behind must still be safe to walk */
        wascc_map_iter it;
        wascc_str k, v;
        wascc_map_begin(&q.header, &it);
        while (wascc_map_next(&it, &k, &v) == 0) {
        }
    }

    wascc_http_response s;
    if (wascc_http_response_decode(data, len, &s) == 0) {
        t->resp++;
        printf(" resp=1 sc=%u", (unsigned)s.status_code);
        put_wstr("ss", s.status);
        walk_headers(&s.header, "sh", "shs", "sct");
        printf(" sbl=%u", (unsigned)s.body_len);
    } else {
        printf(" resp=0");
    }

    wascc_kv_value kv;
    if (wascc_kv_reply_decode(data, len, &kv) == 0) {
        t->kv++;
        printf(" kv=1");
        put_wstr("kval", kv.value);
        printf(" kex=%d knum=%lld kn=%u", kv.exists, (long long)kv.number,
               (unsigned)kv.values.count);
        uint32_t h = 0;
        unsigned long found = 0;
        /* every index, and two past the end (which must fail) */
        for (uint64_t i = 0; i <= (uint64_t)kv.values.count + 1; i++) {
            wascc_str item;
            if (wascc_strings_at(&kv.values, (uint32_t)i, &item) == 0) {
                if (i >= kv.values.count) {
                    fprintf(stderr, "wascc_strings_at answered index %llu of %u\n",
                            (unsigned long long)i, (unsigned)kv.values.count);
                    abort();
                }
                found++;
                h = crc(h, item.p, item.n);
                h = crc(h, "", 1);
            }
        }
        printf(" kat=%lu kvs=%08x", found, (unsigned)h);
    } else {
        printf(" kv=0");
    }

    wascc_broker_message bm;
    if (wascc_broker_message_decode(data, len, &bm) == 0) {
        t->bm++;
        printf(" bm=1");
        put_wstr("bs", bm.subject);
        put_wstr("br", bm.reply_to);
        printf(" bbl=%u", (unsigned)bm.body_len);
    } else {
        printf(" bm=0");
    }

    wascc_generator_result g;
    if (wascc_generator_result_decode(data, len, &g) == 0) {
        t->gen++;
        printf(" gen=1");
        put_wstr("gg", g.guid);
        printf(" gs=%llu gr=%llu", (unsigned long long)g.sequence_number,
               (unsigned long long)g.random_number);
    } else {
        printf(" gen=0");
    }

    wascc_telnet tn;
    if (wascc_telnet_decode(data, len, &tn) == 0) {
        t->tel++;
        printf(" tel=1");
        put_wstr("ts", tn.session);
        put_wstr("tt", tn.text);
    } else {
        printf(" tel=0");
    }

    run_data(data, len, t);

    wmp_reader r;
    wmp_reader_init(&r, data, len);
    if (wmp_skip(&r)) {
        t->skip++;
        printf(" skip=%zu", (size_t)(r.p - data));
        if (r.err || r.p > r.end) abort();
    } else {
        printf(" skip=-1");
        if (!r.err) abort();
    }

    /* and over the whole input: value after value until it ends or one is refused */
    unsigned long values = 0;
    size_t consumed = 0;
    wmp_reader_init(&r, data, len);
    while (wmp_remaining(&r) && wmp_skip(&r)) {
        values++;
        consumed = (size_t)(r.p - data);
    }
    if (consumed > len) abort();
    printf(" seq=%lu:%zu", values, consumed);

    wmp_writer w;
    wmp_writer_init(&w, NULL, 0, grow, NULL);
    wjson_str(&w, data, len);
    if (w.err) {
        printf(" json=err\n");
    } else {
        t->json_bytes += w.len;
        printf(" json=%zu:%08x\n", w.len, (unsigned)crc(0, w.buf, w.len));
    }
    free(w.buf);
}

/* The decoders accept (NULL, 0) (msgpack.h's reader is written for it): all refuse. */
static void null_input(void) {
    wascc_http_request q;
    wascc_http_response s;
    wascc_kv_value kv;
    wascc_broker_message bm;
    wascc_generator_result g;
    wascc_telnet tn;
    wascc_file_chunk fc;
    wascc_blob blob;
    wascc_blob_list bl;
    wascc_result_set rs;
    wmp_reader r;
    wmp_reader_init(&r, NULL, 0);
    if (wascc_http_request_decode(NULL, 0, &q) == 0 || wascc_http_response_decode(NULL, 0, &s) == 0 ||
        wascc_kv_reply_decode(NULL, 0, &kv) == 0 || wascc_broker_message_decode(NULL, 0, &bm) == 0 ||
        wascc_generator_result_decode(NULL, 0, &g) == 0 || wascc_telnet_decode(NULL, 0, &tn) == 0 ||
        wascc_file_chunk_decode(NULL, 0, &fc) == 0 || wascc_blob_decode(NULL, 0, &blob) == 0 ||
        wascc_blob_list_decode(NULL, 0, &bl) == 0 || wascc_result_set_decode(NULL, 0, &rs) == 0 ||
        wmp_skip(&r)) {
        fprintf(stderr, "an empty payload decoded\n");
        abort();
    }
}

int main(void) {
    null_input();
    size_t cap = 1 << 20, len = 0;
    uint8_t *in = malloc(cap);
    if (!in) return 2;
    for (;;) {
        if (len == cap) {
            cap *= 2;
            uint8_t *bigger = realloc(in, cap);
            if (!bigger) return 2;
            in = bigger;
        }
        size_t got = fread(in + len, 1, cap - len, stdin);
        if (!got) break;
        len += got;
    }
    struct totals t = {0};
    size_t at = 0;
    while (at < len) {
        if (len - at < 4) {
            fprintf(stderr, "a frame header is cut short at offset %zu\n", at);
            return 2;
        }
        size_t n = (size_t)in[at] | (size_t)in[at + 1] << 8 | (size_t)in[at + 2] << 16 |
                   (size_t)in[at + 3] << 24;
        at += 4;
        if (n > len - at) {
            fprintf(stderr, "a frame of %zu bytes is cut short at offset %zu\n", n, at);
            return 2;
        }
        /* exactly n bytes of heap (none for n = 0): AddressSanitizer sees any read past
         * them */
        uint8_t *payload = malloc(n);
        if (!payload && n) return 2;
        if (n) memcpy(payload, in + at, n);
        run(payload, n, &t);
        free(payload);
        at += n;
    }
    free(in);
    printf("SUMMARY payloads=%lu req=%lu resp=%lu kv=%lu bm=%lu gen=%lu tel=%lu fc=%lu blob=%lu "
           "bl=%lu rs=%lu skip=%lu json_bytes=%llu\n",
           t.payloads, t.req, t.resp, t.kv, t.bm, t.gen, t.tel, t.fc, t.blob, t.bl, t.rs, t.skip,
           t.json_bytes);
    return ferror(stdout) ? 3 : 0;
}
