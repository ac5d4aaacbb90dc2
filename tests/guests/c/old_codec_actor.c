/*
 * old_codec_actor - an HTTP actor that decodes like an actor of an older codec
 * era (tests/test_codec_eras.py; CONTRACTS section 2, "Codec eras").
 *
 * Built twice:
 *   -DERA_ARRAY  codec 0.5.x: structs are positional arrays, Vec<u8> bodies are
 *                arrays of ints; it reads nothing else.  Replies
 *                [status_code, status, header, body-as-int-array].
 *   -DERA_SNAKE  unreleased commits: maps keyed by snake_case names
 *                (`query_string`); it reads nothing else.  Replies
 *                {status_code, status, header, body: bin}.
 *
 * A request it cannot read is answered with a guest error in rmp-serde's words
 * ("invalid type: map, expected a sequence", "missing field `query_string`",
 * ...), as the original actors' generated handlers did.  A request it reads is
 * answered 202 Accepted with the body "<era> <method> <path>?<query> h=<headers> <body>"
 * and the header X-Era: <era>.  "Decode" runs the same decoder under an
 * operation the host knows no struct for; HealthRequest answers nil.
 */
#include <wascc/actor.h>

#if defined(ERA_ARRAY)
#define ERA "array"
#elif defined(ERA_SNAKE)
#define ERA "snake"
#else
#error "define ERA_ARRAY or ERA_SNAKE"
#endif

typedef struct {
    const char *method, *path, *query;
    uint32_t method_len, path_len, query_len, headers;
    const uint8_t *body;
    uint32_t body_len;
} request;

static const char *type_name(int type) {
    switch (type) {
    case WMP_NIL: return "unit value";
    case WMP_BOOL: return "boolean";
    case WMP_INT: return "integer";
    case WMP_FLOAT: return "floating point";
    case WMP_STR: return "string";
    case WMP_BIN: return "byte array";
    case WMP_ARRAY: return "sequence";
    case WMP_MAP: return "map";
    default: return "unexpected data";
    }
}

/* "invalid type: <found>, expected <what>" in the arena. */
static wapc_result invalid_type(int found, const char *what) {
    wmp_writer w;
    wapc_writer(&w);
    const char *parts[] = {"invalid type: ", type_name(found), ", expected ", what};
    for (int i = 0; i < 4; i++) wmp_put(&w, parts[i], wapc_strlen(parts[i]));
    return wapc_error_bytes(w.buf, w.len);
}

static int read_string(wmp_reader *r, const char **s, uint32_t *len, wapc_result *err) {
    if (wmp_peek(r) != WMP_STR) {
        *err = invalid_type(wmp_peek(r), "a string");
        return 0;
    }
    return wmp_read_str(r, s, len) || (*err = wapc_error("unexpected end of input"), 0);
}

static int read_header(wmp_reader *r, uint32_t *count, wapc_result *err) {
    uint32_t n;
    if (wmp_peek(r) != WMP_MAP) {
        *err = invalid_type(wmp_peek(r), "a map");
        return 0;
    }
    wmp_read_map(r, &n);
    for (uint32_t i = 0; i < n; i++) {
        const char *s;
        uint32_t len;
        if (!read_string(r, &s, &len, err) || !read_string(r, &s, &len, err)) return 0;
    }
    *count = n;
    return 1;
}

#ifdef ERA_ARRAY
/* Vec<u8> without serde_bytes: an array of ints, nothing else. */
static int read_body(wmp_reader *r, const uint8_t **body, uint32_t *len, wapc_result *err) {
    uint32_t n;
    if (wmp_peek(r) != WMP_ARRAY) {
        *err = invalid_type(wmp_peek(r), "a sequence");
        return 0;
    }
    wmp_read_array(r, &n);
    if (n > wmp_remaining(r)) {
        *err = wapc_error("unexpected end of input");
        return 0;
    }
    uint8_t *out = (uint8_t *)wapc_alloc(n ? n : 1);
    if (!out) {
        *err = wapc_error("out of memory");
        return 0;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint64_t v;
        if (wmp_peek(r) != WMP_INT || !wmp_read_uint(r, &v) || v > 255) {
            *err = wapc_error("invalid value: integer, expected u8");
            return 0;
        }
        out[i] = (uint8_t)v;
    }
    *body = out;
    *len = n;
    return 1;
}

static int decode(wmp_reader *r, request *q, wapc_result *err) {
    uint32_t n;
    if (wmp_peek(r) != WMP_ARRAY) {
        *err = invalid_type(wmp_peek(r), "a sequence");
        return 0;
    }
    wmp_read_array(r, &n);
    if (n != 5) {
        char *text = (char *)wapc_alloc(64);
        const char *msg = "invalid length 0, expected struct Request with 5 elements";
        uint32_t len = (uint32_t)wapc_strlen(msg);
        wmp_copy(text, msg, len);
        text[15] = (char)('0' + (n > 9 ? 9 : n));
        *err = wapc_error_bytes(text, len);
        return 0;
    }
    return read_string(r, &q->method, &q->method_len, err) &&
           read_string(r, &q->path, &q->path_len, err) &&
           read_string(r, &q->query, &q->query_len, err) && read_header(r, &q->headers, err) &&
           read_body(r, &q->body, &q->body_len, err);
}

static wapc_result respond(const uint8_t *body, size_t len) {
    wmp_writer w;
    wapc_writer(&w);
    wmp_write_array(&w, 4);
    wmp_write_uint(&w, 202);
    wmp_write_cstr(&w, "Accepted");
    wmp_write_map(&w, 1);
    wmp_write_cstr(&w, "X-Era");
    wmp_write_cstr(&w, ERA);
    wmp_write_array(&w, (uint32_t)len);
    for (size_t i = 0; i < len; i++) wmp_write_uint(&w, body[i]);
    return wapc_ok_writer(&w);
}
#else
static int decode(wmp_reader *r, request *q, wapc_result *err) {
    uint32_t n;
    if (wmp_peek(r) != WMP_MAP) {
        *err = invalid_type(wmp_peek(r), "struct Request");
        return 0;
    }
    wmp_read_map(r, &n);
    int seen = 0; /* bits: method, path, query_string, header, body */
    for (uint32_t i = 0; i < n; i++) {
        const char *key;
        uint32_t key_len;
        if (!read_string(r, &key, &key_len, err)) return 0;
        if (wmp_eq(key, key_len, "method")) {
            if (!read_string(r, &q->method, &q->method_len, err)) return 0;
            seen |= 1;
        } else if (wmp_eq(key, key_len, "path")) {
            if (!read_string(r, &q->path, &q->path_len, err)) return 0;
            seen |= 2;
        } else if (wmp_eq(key, key_len, "query_string")) {
            if (!read_string(r, &q->query, &q->query_len, err)) return 0;
            seen |= 4;
        } else if (wmp_eq(key, key_len, "header")) {
            if (!read_header(r, &q->headers, err)) return 0;
            seen |= 8;
        } else if (wmp_eq(key, key_len, "body")) {
            if (wmp_peek(r) != WMP_BIN) {
                *err = invalid_type(wmp_peek(r), "a byte array");
                return 0;
            }
            if (!wmp_read_bin(r, &q->body, &q->body_len)) return 0;
            seen |= 16;
        } else if (!wmp_skip(r)) { /* serde ignores unknown fields */
            *err = wapc_error("unexpected end of input");
            return 0;
        }
    }
    static const char *const fields[] = {"method", "path", "query_string", "header", "body"};
    for (int i = 0; i < 5; i++) {
        if (!(seen & (1 << i))) {
            *err = wapc_error2("missing field `", fields[i], wapc_strlen(fields[i]));
            wmp_writer w;
            wapc_writer(&w);
            wmp_put(&w, err->data, err->len);
            wmp_put(&w, "`", 1);
            *err = wapc_error_bytes(w.buf, w.len);
            return 0;
        }
    }
    return 1;
}

static wapc_result respond(const uint8_t *body, size_t len) {
    wmp_writer w;
    wapc_writer(&w);
    wmp_write_map(&w, 4);
    wmp_write_cstr(&w, "status_code");
    wmp_write_uint(&w, 202);
    wmp_write_cstr(&w, "status");
    wmp_write_cstr(&w, "Accepted");
    wmp_write_cstr(&w, "header");
    wmp_write_map(&w, 1);
    wmp_write_cstr(&w, "X-Era");
    wmp_write_cstr(&w, ERA);
    wmp_write_cstr(&w, "body");
    wmp_write_bin(&w, body, len);
    return wapc_ok_writer(&w);
}
#endif

static wapc_result handle_request(const uint8_t *msg, size_t len) {
    wmp_reader r;
    request q;
    wapc_result err = wapc_error("unexpected end of input");
    wmp_reader_init(&r, msg, len);
    if (!decode(&r, &q, &err)) return wapc_error2("Failed to de-serialize: ", err.data, err.len);
    wmp_writer out;
    wapc_writer(&out);
    wmp_put(&out, ERA " ", sizeof(ERA " ") - 1);
    wmp_put(&out, q.method, q.method_len);
    wmp_put(&out, " ", 1);
    wmp_put(&out, q.path, q.path_len);
    wmp_put(&out, "?", 1);
    wmp_put(&out, q.query, q.query_len);
    wmp_put(&out, " h=", 3);
    char digit = (char)('0' + (q.headers > 9 ? 9 : q.headers));
    wmp_put(&out, &digit, 1);
    wmp_put(&out, " ", 1);
    wmp_put(&out, q.body, q.body_len);
    if (out.err) return wapc_error("out of memory");
    return respond(out.buf, out.len);
}

/* Rust actors of the waSCC era answer HealthRequest with nil. */
static wapc_result health(const uint8_t *msg, size_t len) {
    (void)msg;
    (void)len;
    static const uint8_t nil = 0xc0;
    return wapc_ok(&nil, 1);
}

void wapc_register_handlers(void) {
    wapc_register("HandleRequest", handle_request);
    wapc_register("Decode", handle_request); /* the same decoder under an unknown operation */
    wapc_register("HealthRequest", health);
}
