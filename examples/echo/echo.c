/*
 * echo - answers every HTTP request with a JSON echo of it.
 *
 * Capability: wascc:http_server (HandleRequest).  Response:
 *   {"method": "...", "path": "...", "query_string": "...",
 *    "headers": {"name": "value", ...}, "body": "..."}
 */
#include <wascc/actor.h>
#include <wascc/json.h>

static wapc_result handle_request(const uint8_t *msg, size_t len) {
    wascc_http_request q;
    if (wascc_http_request_decode(msg, len, &q) != 0)
        return wapc_error("echo: the payload is not an HTTP request");
    wmp_writer body;
    wapc_writer(&body);
    wjson_raw(&body, "{\"method\":");
    wjson_str(&body, q.method.p, q.method.n);
    wjson_raw(&body, ",\"path\":");
    wjson_str(&body, q.path.p, q.path.n);
    wjson_raw(&body, ",\"query_string\":");
    wjson_str(&body, q.query_string.p, q.query_string.n);
    wjson_raw(&body, ",\"headers\":{");
    wascc_map_iter it;
    wascc_str name, value;
    int first = 1;
    wascc_map_begin(&q.header, &it);
    while (wascc_map_next(&it, &name, &value) == 0) {
        if (!first) wjson_raw(&body, ",");
        first = 0;
        wjson_str(&body, name.p, name.n);
        wjson_raw(&body, ":");
        wjson_str(&body, value.p, value.n);
    }
    wjson_raw(&body, "},\"body\":");
    wjson_str(&body, q.body, q.body_len);
    wjson_raw(&body, "}");
    if (body.err) return wapc_error("echo: out of memory");

    return wapc_http_respond(200, "OK", "application/json", body.buf, body.len);
}

void wapc_register_handlers(void) { wapc_register("HandleRequest", handle_request); }
