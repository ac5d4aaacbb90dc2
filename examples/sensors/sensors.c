/*
 * sensors - temperature readings in, running averages kept, alerts out.
 *
 * Capabilities: wascc:messaging (DeliverMessage, Publish), wascc:keyvalue (Add, SetAdd,
 * SetQuery).  Bind messaging with SUBSCRIPTION "sensors.*.temperature,stats.get".
 *
 *   sensors.<id>.temperature   body: a reading in degrees, e.g. "21.5" or "-3"
 *       adds it to sensors:<id>:sum (tenths) and sensors:<id>:count in keyvalue, and
 *       above 30.0 publishes alerts.<id> {"sensor":"<id>","temperature":31.2,"average":24.8}
 *   stats.get (a request)      body: a sensor id, or empty for every sensor
 *       answers on replyTo {"sensor":"<id>","count":3,"average":22.5}, or
 *       {"sensors":[...]} with one such object per sensor
 *
 * A reading that is not a number is an actor error (logged by the host; the
 * subscription goes on).
 */
#include <wascc/actor.h>
#include <wascc/json.h>

#define ALERT_ABOVE_TENTHS 300 /* 30.0 degrees */
#define MAX_ID 64

static int parse_tenths(const uint8_t *p, uint32_t n, int32_t *out) {
    uint32_t i = 0;
    int negative = 0, digits = 0, fraction = -1;
    int64_t v = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r')) i++;
    while (n > i && (p[n - 1] == ' ' || p[n - 1] == '\n' || p[n - 1] == '\r')) n--;
    if (i < n && (p[i] == '-' || p[i] == '+')) negative = p[i++] == '-';
    for (; i < n; i++) {
        if (p[i] == '.' && fraction < 0) {
            fraction = 0;
            continue;
        }
        if (p[i] < '0' || p[i] > '9') return -1;
        if (fraction >= 1) continue; /* tenths are enough */
        v = v * 10 + (p[i] - '0');
        digits++;
        if (fraction == 0) fraction = 1;
        if (v > 100000000) return -1;
    }
    if (!digits) return -1;
    if (fraction < 1) v *= 10;
    *out = (int32_t)(negative ? -v : v);
    return 0;
}

static void tenths_json(wmp_writer *w, int64_t t) {
    if (t < 0) {
        wjson_raw(w, "-");
        t = -t;
    }
    wjson_int(w, t / 10);
    char frac[3] = {'.', (char)('0' + t % 10), 0};
    wjson_raw(w, frac);
}

static char *join(const char *a, wascc_str mid, const char *b) {
    size_t la = wapc_strlen(a), lb = wapc_strlen(b);
    char *out = (char *)wapc_alloc(la + mid.n + lb + 1);
    if (!out) return 0;
    wmp_copy(out, a, la);
    wmp_copy(out + la, mid.p, mid.n);
    wmp_copy(out + la + mid.n, b, lb);
    out[la + mid.n + lb] = 0;
    return out;
}

/* keyvalue Add (0 reads the current value atomically); -1 with *err set on failure. */
static int kv_add(const char *key, int32_t by, int64_t *value, wapc_result *err) {
    wmp_writer w;
    wapc_writer(&w);
    wascc_kv_add_write(&w, key, by);
    wapc_result r = wapc_host_call_writer("default", "wascc:keyvalue", "Add", &w);
    wascc_kv_value reply;
    if (!r.ok) {
        *err = wapc_error2("sensors: keyvalue Add failed: ", r.data, r.len);
        return -1;
    }
    if (wascc_kv_reply_decode(r.data, r.len, &reply) != 0) {
        *err = wapc_error("sensors: keyvalue answered Add with something else");
        return -1;
    }
    *value = reply.number;
    return 0;
}

static wapc_result publish(const char *subject, const wmp_writer *body) {
    wmp_writer w;
    wapc_writer(&w);
    wascc_broker_message_write(&w, subject, "", body->buf, body->len);
    wapc_result r = wapc_host_call_writer("default", "wascc:messaging", "Publish", &w);
    if (!r.ok) return wapc_error2("sensors: Publish failed: ", r.data, r.len);
    return wapc_ok("", 0);
}

static int valid_id(wascc_str id) {
    if (!id.n || id.n > MAX_ID) return 0;
    for (uint32_t i = 0; i < id.n; i++) {
        char c = id.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/* {"sensor":..., "count":N, "average":X} for one sensor into w; -1 with *err on failure. */
static int sensor_json(wmp_writer *w, wascc_str id, wapc_result *err) {
    char *sum_key = join("sensors:", id, ":sum"), *count_key = join("sensors:", id, ":count");
    int64_t sum = 0, count = 0;
    if (!sum_key || !count_key) {
        *err = wapc_error("sensors: out of memory");
        return -1;
    }
    if (kv_add(count_key, 0, &count, err) || kv_add(sum_key, 0, &sum, err)) return -1;
    wjson_raw(w, "{\"sensor\":");
    wjson_str(w, id.p, id.n);
    wjson_raw(w, ",\"count\":");
    wjson_int(w, count);
    wjson_raw(w, ",\"average\":");
    if (count) tenths_json(w, sum / count);
    else wjson_raw(w, "null");
    wjson_raw(w, "}");
    return 0;
}

static wapc_result reading(wascc_str id, const wascc_broker_message *m) {
    int32_t tenths;
    if (parse_tenths(m->body, m->body_len, &tenths) != 0)
        return wapc_error2("sensors: not a temperature: ", m->body, m->body_len > 32 ? 32 : m->body_len);
    char *sum_key = join("sensors:", id, ":sum"), *count_key = join("sensors:", id, ":count");
    char *name = join("", id, "");
    if (!sum_key || !count_key || !name) return wapc_error("sensors: out of memory");
    wapc_result err;
    int64_t sum, count;
    if (kv_add(sum_key, tenths, &sum, &err) || kv_add(count_key, 1, &count, &err)) return err;

    wmp_writer add;
    wapc_writer(&add);
    wascc_kv_key_value_write(&add, "sensors", name);
    wapc_result r = wapc_host_call_writer("default", "wascc:keyvalue", "SetAdd", &add);
    if (!r.ok) return wapc_error2("sensors: keyvalue SetAdd failed: ", r.data, r.len);

    if (tenths <= ALERT_ABOVE_TENTHS) return wapc_ok("", 0);
    wmp_writer alert;
    wapc_writer(&alert);
    wjson_raw(&alert, "{\"sensor\":");
    wjson_str(&alert, id.p, id.n);
    wjson_raw(&alert, ",\"temperature\":");
    tenths_json(&alert, tenths);
    wjson_raw(&alert, ",\"average\":");
    tenths_json(&alert, sum / (count ? count : 1));
    wjson_raw(&alert, "}");
    char *subject = join("alerts.", id, "");
    if (!subject) return wapc_error("sensors: out of memory");
    return publish(subject, &alert);
}

static wapc_result stats(const wascc_broker_message *m) {
    if (!m->reply_to.n) return wapc_ok("", 0); /* not a request: nobody to answer */
    char *reply_to = join("", m->reply_to, "");
    if (!reply_to) return wapc_error("sensors: out of memory");
    wmp_writer out;
    wapc_writer(&out);
    wapc_result err;
    wascc_str id = {(const char *)m->body, m->body_len};
    if (id.n) {
        if (!valid_id(id)) {
            wjson_raw(&out, "{\"error\":\"not a sensor id\"}");
        } else if (sensor_json(&out, id, &err)) {
            return err;
        }
        return publish(reply_to, &out);
    }
    wmp_writer q;
    wapc_writer(&q);
    wascc_kv_key_write(&q, "sensors");
    wapc_result r = wapc_host_call_writer("default", "wascc:keyvalue", "SetQuery", &q);
    wascc_kv_value names;
    if (!r.ok) return wapc_error2("sensors: keyvalue SetQuery failed: ", r.data, r.len);
    if (wascc_kv_reply_decode(r.data, r.len, &names) != 0)
        return wapc_error("sensors: keyvalue answered SetQuery with something else");
    wjson_raw(&out, "{\"sensors\":[");
    for (uint32_t i = 0; i < names.values.count; i++) {
        wascc_str name;
        if (wascc_strings_at(&names.values, i, &name) != 0) break;
        if (i) wjson_raw(&out, ",");
        if (sensor_json(&out, name, &err)) return err;
    }
    wjson_raw(&out, "]}");
    return publish(reply_to, &out);
}

static wapc_result deliver(const uint8_t *msg, size_t len) {
    wascc_broker_message m;
    if (wascc_broker_message_decode(msg, len, &m) != 0)
        return wapc_error("sensors: the payload is not a BrokerMessage");
    if (wascc_str_eq(m.subject, "stats.get")) return stats(&m);
    /* sensors.<id>.temperature */
    const char *prefix = "sensors.", *suffix = ".temperature";
    uint32_t lp = 8, ls = 12;
    if (m.subject.n > lp + ls && wmp_eq(m.subject.p, lp, prefix) &&
        wmp_eq(m.subject.p + m.subject.n - ls, ls, suffix)) {
        wascc_str id = {m.subject.p + lp, m.subject.n - lp - ls};
        if (!valid_id(id)) return wapc_error("sensors: a sensor id is letters, digits, - and _");
        return reading(id, &m);
    }
    return wapc_error2("sensors: no handler for subject ", m.subject.p, m.subject.n);
}

void wapc_register_handlers(void) { wapc_register("DeliverMessage", deliver); }
