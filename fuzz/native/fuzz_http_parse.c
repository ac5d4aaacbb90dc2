/*
 * fuzz_http_parse.c - libFuzzer target for the native http_server's parser
 * and response decoder (native/providers/http_server/parse.c).
 *
 * The input is fed to hs_parse in up to three pieces (as recv() might deliver
 * it), with the server's buffer compaction in between; every request it
 * completes must be a HandleRequest payload the C contracts decoder reads, and
 * every refusal one of the server's error statuses.  The same bytes are then
 * read as an actor's HttpResponse and rendered.  Run (clang with libFuzzer):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Inative/include \
 *     -Inative/providers/common -Inative/providers/http_server \
 *     -o /tmp/fuzz_http_parse fuzz/native/fuzz_http_parse.c \
 *     native/providers/http_server/parse.c
 *   /tmp/fuzz_http_parse -max_total_time=60
 *
 * Without libFuzzer (gcc, or clang without its runtime), -DHS_FUZZ_MAIN adds
 * a main() that mutates built-in seeds at random for N cases:
 *
 *   gcc -g -O1 -DHS_FUZZ_MAIN -fsanitize=address,undefined ... (as above)
 *   /tmp/fuzz_http_parse 2000000
 */
#include <stdlib.h>
#include <string.h>

#include <wascc/contracts.h>

#include "hs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hs_settings s = {0};
    s.max_header_bytes = 512;
    s.max_body_bytes = 256;
    s.access_log = size & 1;
    hs_parser p;
    hs_parser_init(&p, &s);
    uint8_t *buf = malloc(size + 1);
    size_t len = 0;
    size_t cut1 = size ? data[0] % (size + 1) : 0, cut2 = size ? data[size - 1] % (size + 1) : 0;
    if (cut1 > cut2) {
        size_t t = cut1;
        cut1 = cut2;
        cut2 = t;
    }
    size_t cuts[3] = {cut1, cut2, size};
    size_t fed = 0;
    int done = 0;
    for (int piece = 0; piece < 3 && !done; piece++) {
        memcpy(buf + len, data + fed, cuts[piece] - fed);
        len += cuts[piece] - fed;
        fed = cuts[piece];
        size_t pos = 0;
        for (;;) {
            hs_refusal why;
            int r = hs_parse(&p, buf, len, &pos, 1.0, &why);
            if (r == HS_MORE) break;
            if (r == HS_REFUSE) {
                int c = why.code;
                if (c != 400 && c != 413 && c != 417 && c != 431 && c != 505) abort();
                done = 1;
                break;
            }
            wascc_http_request q;
            if (wascc_http_request_decode(p.payload.p, p.payload.len, &q) != 0) abort();
            hs_parser_next(&p);
        }
        memmove(buf, buf + pos, len - pos);
        len -= pos;
    }
    hs_parser_free(&p);
    free(buf);

    hs_reply r;
    hs_actor_reply(&r, data, size);
    hs_buf out = {0};
    hs_render(&out, &r, size & 2, size & 4, size & 8);
    hs_buf_free(&out);
    hs_reply_free(&r);
    return 0;
}

#ifdef HS_FUZZ_MAIN
#include <stdio.h>

typedef struct {
    const char *bytes;
    size_t len; /* 0: strlen */
} seed_t;

static const seed_t SEEDS[] = {
    {"GET /a?b#c HTTP/1.1\r\nHost: x\r\nCookie: a\r\nCookie: b\r\nX: \xff\r\n\r\n", 0},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n"
     "\r\n", 0},
    {"PUT /x HTTP/1.0\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc"
     "GET http://h:80/p?q#f HTTP/1.1\r\nExpect: 100-continue\r\n\r\n", 0},
    {"\r\nCONNECT h:443 HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n", 0},
    /* {statusCode: 300, status: "OK", header: {A: "b"}, body: bin "x"} */
    {"\x84\xaa" "statusCode" "\xcd\x01\x2c\xa6" "status" "\xa2" "OK" "\xa6" "header" "\x81\xa1"
     "A" "\xa1" "b" "\xa4" "body" "\xc4\x01" "x", 45},
    /* [200, "", {}, [1, 2, 3]] */
    {"\x94\xcc\xc8\xa0\x80\x93\x01\x02\x03", 9},
};

int main(int argc, char **argv) {
    long cases = argc > 1 ? atol(argv[1]) : 100000;
    srand(12345);
    uint8_t buf[4096];
    for (long i = 0; i < cases; i++) {
        const seed_t *seed = &SEEDS[rand() % (int)(sizeof SEEDS / sizeof *SEEDS)];
        size_t n = seed->len ? seed->len : strlen(seed->bytes);
        memcpy(buf, seed->bytes, n);
        int edits = 1 + rand() % 8;
        for (int e = 0; e < edits; e++) {
            int op = rand() % 4;
            size_t at = n ? (size_t)rand() % n : 0;
            if (op == 0 && n) buf[at] = (uint8_t)rand();
            else if (op == 1 && n < sizeof buf - 64) { /* insert bytes */
                size_t k = 1 + (size_t)rand() % 16;
                memmove(buf + at + k, buf + at, n - at);
                for (size_t j = 0; j < k; j++) buf[at + j] = (uint8_t)"\r\n:; 0aF\t,"[rand() % 10];
                n += k;
            } else if (op == 2 && n) { /* delete */
                size_t k = 1 + (size_t)rand() % 8;
                if (at + k > n) k = n - at;
                memmove(buf + at, buf + at + k, n - at - k);
                n -= k;
            } else if (op == 3 && n && n < sizeof buf / 2) { /* duplicate */
                memcpy(buf + n, buf, n);
                n *= 2;
            }
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("%ld cases\n", cases);
    return 0;
}
#endif
