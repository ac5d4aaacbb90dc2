/*
 * messaging_actor - the publisher and the subscriber of benchmarks/bench_messaging.py.
 *
 *   PublishMany     payload: [u32 count, little-endian][a BrokerMessage]; publishes the
 *                   BrokerMessage `count` times through wascc:messaging Publish
 *   DeliverMessage  counts the message and answers empty (the cheapest subscriber)
 *   Count           answers the count as a u32, little-endian
 */
#include <wascc/actor.h>

static uint32_t received;

static wapc_result publish_many(const uint8_t *msg, size_t len) {
    if (len < 4) return wapc_error("PublishMany: payload shorter than its count");
    uint32_t count = (uint32_t)msg[0] | (uint32_t)msg[1] << 8 | (uint32_t)msg[2] << 16 |
                     (uint32_t)msg[3] << 24;
    for (uint32_t i = 0; i < count; i++) {
        wapc_result r = wapc_host_call("default", "wascc:messaging", "Publish", msg + 4, len - 4);
        if (!r.ok) return wapc_error2("PublishMany: ", r.data, r.len);
    }
    return wapc_ok("", 0);
}

static wapc_result deliver(const uint8_t *msg, size_t len) {
    (void)msg;
    (void)len;
    received++;
    return wapc_ok("", 0);
}

static wapc_result count(const uint8_t *msg, size_t len) {
    (void)msg;
    (void)len;
    uint8_t *out = (uint8_t *)wapc_alloc(4);
    if (!out) return wapc_error("out of memory");
    for (int i = 0; i < 4; i++) out[i] = (uint8_t)(received >> (8 * i));
    return wapc_ok(out, 4);
}

void wapc_register_handlers(void) {
    wapc_register("PublishMany", publish_many);
    wapc_register("DeliverMessage", deliver);
    wapc_register("Count", count);
}
