/*
 * kvcounter - counts HTTP requests per path in wascc:keyvalue.
 *
 * Capabilities: wascc:http_server (HandleRequest), wascc:keyvalue (Add).
 * The key is the request path with '/' replaced by ':' (as the original
 * waSCC kvcounter did), so GET /hits and GET /other count separately.
 * Response: {"counter": N}.  A keyvalue failure is an actor error (HTTP 500).
 */
#include <wascc/actor.h>
#include <wascc/json.h>

static wapc_result handle_request(const uint8_t *msg, size_t len) {
    wascc_http_request q;
    if (wascc_http_request_decode(msg, len, &q) != 0)
        return wapc_error("kvcounter: the payload is not an HTTP request");
    char *key = (char *)wapc_alloc(q.path.n + 1);
    if (!key) return wapc_error("kvcounter: out of memory");
    for (uint32_t i = 0; i < q.path.n; i++) key[i] = q.path.p[i] == '/' ? ':' : q.path.p[i];
    key[q.path.n] = 0;

    wmp_writer add;
    wapc_writer(&add);
    wascc_kv_add_write(&add, key, 1);
    wapc_result r = wapc_host_call_writer("default", "wascc:keyvalue", "Add", &add);
    if (!r.ok) return wapc_error2("kvcounter: keyvalue Add failed: ", r.data, r.len);
    wascc_kv_value reply;
    if (wascc_kv_reply_decode(r.data, r.len, &reply) != 0)
        return wapc_error("kvcounter: keyvalue answered something that is not an AddResponse");

    wmp_writer body;
    wapc_writer(&body);
    wjson_raw(&body, "{\"counter\":");
    wjson_int(&body, reply.number);
    wjson_raw(&body, "}");
    return wapc_http_respond(200, "OK", "application/json", body.buf, body.len);
}

void wapc_register_handlers(void) { wapc_register("HandleRequest", handle_request); }
