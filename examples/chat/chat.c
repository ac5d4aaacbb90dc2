/*
 * chat - a telnet chat room over wascc:telnet and wascc:keyvalue.
 *
 * Every telnet session joins one room.  Lines are relayed to the others as
 * "<nick>: text".  Commands: /nick NAME, /who, /quit (closes nothing: telnet
 * clients leave by disconnecting; /quit just says goodbye and leaves the room).
 *
 * State lives in wascc:keyvalue, so every instance of the actor (and a hot
 * swapped new version) sees the same room:
 *   chat:sessions          a set of session ids in the room
 *   chat:nick:<session>    that session's nickname
 * A session whose SendText fails (the client went away) leaves the room.
 */
#include <wascc/actor.h>

#define ROOM "chat:sessions"

static const char *cstr(wascc_str s) {
    char *p = (char *)wapc_alloc(s.n + 1);
    if (!p) return "";
    wmp_copy(p, s.p, s.n);
    p[s.n] = 0;
    return p;
}

static const char *join3(const char *a, const char *b, const char *c) {
    size_t na = wapc_strlen(a), nb = wapc_strlen(b), nc = wapc_strlen(c);
    char *p = (char *)wapc_alloc(na + nb + nc + 1);
    if (!p) return "";
    wmp_copy(p, a, na);
    wmp_copy(p + na, b, nb);
    wmp_copy(p + na + nb, c, nc);
    p[na + nb + nc] = 0;
    return p;
}

static wapc_result kv(const char *op, const wmp_writer *w) {
    return wapc_host_call_writer("default", "wascc:keyvalue", op, w);
}

static int send_text(wascc_str session, const char *text) {
    wmp_writer w;
    wapc_writer(&w);
    wascc_telnet_write(&w, session, wascc_cstr(text));
    return wapc_host_call_writer("default", "wascc:telnet", "SendText", &w).ok;
}

static const char *nick_key(wascc_str session) { return join3("chat:nick:", cstr(session), ""); }

static const char *nick_of(wascc_str session) {
    wmp_writer w;
    wapc_writer(&w);
    wascc_kv_key_write(&w, nick_key(session));
    wapc_result r = kv("Get", &w);
    wascc_kv_value v;
    if (r.ok && wascc_kv_reply_decode(r.data, r.len, &v) == 0 && v.exists) return cstr(v.value);
    /* guest-<first 4 characters of the session id> */
    wascc_str prefix = {session.p, session.n < 4 ? session.n : 4};
    return join3("guest-", cstr(prefix), "");
}

static void leave(wascc_str session) {
    wmp_writer w;
    wapc_writer(&w);
    wascc_kv_key_value_write(&w, ROOM, cstr(session));
    kv("SetRemove", &w);
    wapc_writer(&w);
    wascc_kv_key_write(&w, nick_key(session));
    kv("Del", &w);
}

/* Sends text to every session in the room except `from`. */
static void broadcast(wascc_str from, const char *text) {
    wmp_writer w;
    wapc_writer(&w);
    wascc_kv_key_write(&w, ROOM);
    wapc_result r = kv("SetQuery", &w);
    wascc_kv_value members;
    if (!r.ok || wascc_kv_reply_decode(r.data, r.len, &members) != 0) return;
    for (uint32_t i = 0; i < members.values.count; i++) {
        wascc_str other;
        if (wascc_strings_at(&members.values, i, &other) != 0) break;
        if (other.n == from.n && wmp_eq(other.p, other.n, cstr(from))) continue;
        if (!send_text(other, text)) leave(other);
    }
}

static wapc_result session_started(const uint8_t *msg, size_t len) {
    wascc_telnet t;
    if (wascc_telnet_decode(msg, len, &t) != 0) return wapc_error("chat: bad SessionStarted");
    wmp_writer w;
    wapc_writer(&w);
    wascc_kv_key_value_write(&w, ROOM, cstr(t.session));
    wapc_result r = kv("SetAdd", &w);
    if (!r.ok) return wapc_error2("chat: cannot join the room: ", r.data, r.len);
    const char *nick = nick_of(t.session);
    send_text(t.session, join3("Welcome to the wascc chat, ", nick,
                               "! Commands: /nick NAME, /who, /quit\r\n"));
    broadcast(t.session, join3("* ", nick, " joined\r\n"));
    return wapc_ok("", 0);
}

static int starts_with(wascc_str s, const char *prefix) {
    size_t n = wapc_strlen(prefix);
    return s.n >= n && wmp_eq(s.p, (uint32_t)n, prefix);
}

static wapc_result receive_text(const uint8_t *msg, size_t len) {
    wascc_telnet t;
    if (wascc_telnet_decode(msg, len, &t) != 0) return wapc_error("chat: bad ReceiveText");
    const char *nick = nick_of(t.session);
    if (starts_with(t.text, "/nick ")) {
        wascc_str name = {t.text.p + 6, t.text.n - 6};
        if (!name.n || name.n > 32) {
            send_text(t.session, "* a nickname has 1 to 32 characters\r\n");
            return wapc_ok("", 0);
        }
        wmp_writer w;
        wapc_writer(&w);
        wascc_kv_set_write(&w, nick_key(t.session), cstr(name), 0);
        kv("Set", &w);
        broadcast(t.session, join3("* ", nick, join3(" is now ", cstr(name), "\r\n")));
        send_text(t.session, join3("* you are now ", cstr(name), "\r\n"));
    } else if (wascc_str_eq(t.text, "/who")) {
        wmp_writer w;
        wapc_writer(&w);
        wascc_kv_key_write(&w, ROOM);
        wapc_result r = kv("SetQuery", &w);
        wascc_kv_value members;
        if (r.ok && wascc_kv_reply_decode(r.data, r.len, &members) == 0) {
            const char *list = "* here:";
            for (uint32_t i = 0; i < members.values.count; i++) {
                wascc_str s;
                if (wascc_strings_at(&members.values, i, &s) == 0)
                    list = join3(list, " ", nick_of(s));
            }
            send_text(t.session, join3(list, "", "\r\n"));
        }
    } else if (wascc_str_eq(t.text, "/quit")) {
        send_text(t.session, "* bye\r\n");
        broadcast(t.session, join3("* ", nick, " left\r\n"));
        leave(t.session);
    } else if (t.text.n) {
        broadcast(t.session, join3(nick, ": ", join3(cstr(t.text), "\r\n", "")));
    }
    return wapc_ok("", 0);
}

void wapc_register_handlers(void) {
    wapc_register("SessionStarted", session_started);
    wapc_register("ReceiveText", receive_text);
}
