/*
 * messaging_actor - a test actor for wascc:messaging (tests/test_messaging.py).
 *
 * Capability: wascc:messaging (binding "default").
 *   DeliverMessage  counts the message, then:
 *                   body "fail..."  -> answers an error (the subscription must go on)
 *                   body "spin..."  -> burns ~50M iterations first (a slow actor)
 *                   replyTo set     -> publishes the body to replyTo (a responder)
 *                   otherwise       -> publishes the body to "seen.<subject>"
 *                                      (unless the subject starts with "seen.")
 *   Publish         forwards its payload (a BrokerMessage) to the provider's Publish
 *   Request         forwards its payload (a RequestMessage); answers the reply body
 *   Count           answers how many messages this instance received (decimal)
 */
#include <wascc/actor.h>

static uint32_t received;
static volatile uint32_t spin_sink;

static char *cstr(wascc_str s) {
    char *out = (char *)wapc_alloc(s.n + 1);
    if (!out) return 0;
    wmp_copy(out, s.p, s.n);
    out[s.n] = 0;
    return out;
}

static int starts(const uint8_t *p, uint32_t n, const char *lit) {
    uint32_t i = 0;
    for (; lit[i]; i++)
        if (i >= n || p[i] != (uint8_t)lit[i]) return 0;
    return 1;
}

static wapc_result publish(const char *subject, const uint8_t *body, uint32_t len) {
    wmp_writer w;
    wapc_writer(&w);
    wascc_broker_message_write(&w, subject, "", body, len);
    wapc_result r = wapc_host_call_writer("default", "wascc:messaging", "Publish", &w);
    if (!r.ok) return wapc_error2("messaging_actor: Publish failed: ", r.data, r.len);
    return wapc_ok("", 0);
}

static wapc_result deliver(const uint8_t *msg, size_t len) {
    wascc_broker_message m;
    if (wascc_broker_message_decode(msg, len, &m) != 0)
        return wapc_error("messaging_actor: the payload is not a BrokerMessage");
    received++;
    if (starts(m.body, m.body_len, "fail")) return wapc_error("messaging_actor: asked to fail");
    if (starts(m.body, m.body_len, "spin")) {
        for (uint32_t i = 0; i < 50000000u; i++) spin_sink += i;
    }
    if (m.reply_to.n) {
        char *reply = cstr(m.reply_to);
        if (!reply) return wapc_error("messaging_actor: out of memory");
        return publish(reply, m.body, m.body_len);
    }
    if (starts((const uint8_t *)m.subject.p, m.subject.n, "seen.")) return wapc_ok("", 0);
    char *seen = (char *)wapc_alloc(m.subject.n + 6);
    if (!seen) return wapc_error("messaging_actor: out of memory");
    wmp_copy(seen, "seen.", 5);
    wmp_copy(seen + 5, m.subject.p, m.subject.n);
    seen[m.subject.n + 5] = 0;
    return publish(seen, m.body, m.body_len);
}

static wapc_result forward(const char *operation, const uint8_t *msg, size_t len) {
    wapc_result r = wapc_host_call("default", "wascc:messaging", operation, msg, len);
    if (!r.ok) return wapc_error2("messaging_actor: ", r.data, r.len);
    return r;
}

static wapc_result do_publish(const uint8_t *msg, size_t len) {
    return forward("Publish", msg, len);
}

static wapc_result do_request(const uint8_t *msg, size_t len) {
    return forward("Request", msg, len);
}

static wapc_result count(const uint8_t *msg, size_t len) {
    (void)msg;
    (void)len;
    char *out = (char *)wapc_alloc(12);
    if (!out) return wapc_error("messaging_actor: out of memory");
    char digits[11];
    int n = 0;
    uint32_t v = received;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++) out[i] = digits[n - 1 - i];
    return wapc_ok(out, (size_t)n);
}

void wapc_register_handlers(void) {
    wapc_register("DeliverMessage", deliver);
    wapc_register("Publish", do_publish);
    wapc_register("Request", do_request);
    wapc_register("Count", count);
}
