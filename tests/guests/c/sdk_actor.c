/*
 * sdk_actor - exercises the C guest SDK (wascc/actor.h) through the real host.
 *
 * Built by tests/test_sdk.py with
 *     clang --target=wasm32 -nostdlib -Oz -Wall -Wextra -Werror -I native/include \
 *           -Wl,--no-entry -Wl,--strip-all
 *
 * Operations:
 *   Echo        the payload back, copied through an arena-grown msgpack writer
 *   DecodeHttp  an HttpRequest in; an HttpResponse out whose body is
 *               "<method> <path> <header count>" (plus " ct=<content-type>" when
 *               that header is present); a guest error on a payload that is not one
 *   HostEcho    the payload through wascc:testing Echo (binding "default")
 *   HostFail    the payload through wascc:testing Fail (the provider refuses)
 *   Alloc       payload: a decimal number of MiB; allocates and touches them;
 *               "ok", or the error "out of memory"
 *   Json        the payload as a JSON string (wjson_str)
 *   Log         the payload as a console line; answers "logged"
 */
#include <wascc/actor.h>
#include <wascc/json.h>

static wapc_result echo(const uint8_t *msg, size_t len) {
    wmp_writer w;
    wapc_writer(&w);
    /* in slices, so the writer grows step by step through the arena */
    for (size_t at = 0; at < len; at += 1000) wmp_put(&w, msg + at, len - at < 1000 ? len - at : 1000);
    return wapc_ok_writer(&w);
}

static void put_cstr(wmp_writer *w, const char *s) { wmp_put(w, s, wapc_strlen(s)); }

static void put_decimal(wmp_writer *w, uint32_t v) {
    char buf[10];
    int i = 10;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    wmp_put(w, buf + i, (size_t)(10 - i));
}

static wapc_result decode_http(const uint8_t *msg, size_t len) {
    wascc_http_request q;
    if (wascc_http_request_decode(msg, len, &q) != 0)
        return wapc_error("DecodeHttp: the payload is not an HTTP request");
    wascc_map_iter it;
    wascc_str name, value;
    uint32_t n = 0;
    wascc_map_begin(&q.header, &it);
    while (wascc_map_next(&it, &name, &value) == 0) n++;
    if (n != q.header.count) return wapc_error("DecodeHttp: the header map lost pairs");

    wmp_writer body;
    wapc_writer(&body);
    wmp_put(&body, q.method.p, q.method.n);
    put_cstr(&body, " ");
    wmp_put(&body, q.path.p, q.path.n);
    put_cstr(&body, " ");
    put_decimal(&body, n);
    wascc_str ct;
    if (wascc_map_get(&q.header, "content-type", &ct) == 0) {
        put_cstr(&body, " ct=");
        wmp_put(&body, ct.p, ct.n);
    }
    if (body.err) return wapc_error("DecodeHttp: out of memory");

    wmp_writer out;
    wapc_writer(&out);
    wascc_header headers[] = {{"Content-Type", "text/plain"}};
    wascc_http_response_write(&out, 200, "OK", headers, 1, body.buf, body.len);
    return wapc_ok_writer(&out);
}

static wapc_result host_echo(const uint8_t *msg, size_t len) {
    wapc_result r = wapc_host_call("default", "wascc:testing", "Echo", msg, len);
    if (!r.ok) return wapc_error2("HostEcho: host call failed: ", r.data, r.len);
    return r;
}

static wapc_result host_fail(const uint8_t *msg, size_t len) {
    wapc_result r = wapc_host_call("default", "wascc:testing", "Fail", msg, len);
    if (!r.ok) return wapc_error2("HostFail: host call failed: ", r.data, r.len);
    return wapc_error("HostFail: the provider did not fail");
}

static wapc_result alloc(const uint8_t *msg, size_t len) {
    if (!len || len > 4) return wapc_error("Alloc: the payload is not a number of MiB");
    size_t mib = 0;
    for (size_t i = 0; i < len; i++) {
        if (msg[i] < '0' || msg[i] > '9') return wapc_error("Alloc: the payload is not a number of MiB");
        mib = mib * 10 + (size_t)(msg[i] - '0');
    }
    if (mib >= 4096) return wapc_error("out of memory"); /* more than wasm32 can address */
    size_t n = mib << 20;
    volatile uint8_t *p = (volatile uint8_t *)wapc_alloc(n);
    if (!p) return wapc_error("out of memory");
    /* touch every page, then read it back */
    for (size_t i = 0; i < n; i += 4096) p[i] = (uint8_t)(i >> 12);
    for (size_t i = 0; i < n; i += 4096)
        if (p[i] != (uint8_t)(i >> 12)) return wapc_error("Alloc: memory did not keep a value");
    return wapc_ok("ok", 2);
}

static wapc_result json(const uint8_t *msg, size_t len) {
    wmp_writer w;
    wapc_writer(&w);
    wjson_str(&w, msg, len);
    return wapc_ok_writer(&w);
}

static wapc_result log_line(const uint8_t *msg, size_t len) {
    wapc_log_bytes(msg, len);
    return wapc_ok("logged", 6);
}

void wapc_register_handlers(void) {
    wapc_register("Echo", echo);
    wapc_register("DecodeHttp", decode_http);
    wapc_register("HostEcho", host_echo);
    wapc_register("HostFail", host_fail);
    wapc_register("Alloc", alloc);
    wapc_register("Json", json);
    wapc_register("Log", log_line);
}
