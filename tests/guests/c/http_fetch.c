/*
 * http_fetch - a test actor for wascc:http_client (tests/test_http_client.py).
 *
 * Capability: wascc:http_client.  Operation Fetch: forwards its payload (an
 * HttpRequest) to PerformRequest on binding "default" and answers with the
 * provider's HttpResponse, or fails with "http_fetch: " and the host error.
 */
#include <wascc/actor.h>

static wapc_result fetch(const uint8_t *msg, size_t len) {
    wapc_result r = wapc_host_call("default", "wascc:http_client", "PerformRequest", msg, len);
    if (!r.ok) return wapc_error2("http_fetch: ", r.data, r.len);
    return r;
}

void wapc_register_handlers(void) { wapc_register("Fetch", fetch); }
