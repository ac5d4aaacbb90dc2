/*
 * follows - who follows whom, in wascc:graphdb (Cypher on FalkorDB).
 *
 * Capabilities: wascc:http_server (HandleRequest), wascc:graphdb.
 * Everything lives in the graph "social":
 *
 *   POST /follow?who=Ann&whom=Bob   MERGE both people and the FOLLOWS edge -> 200
 *   GET  /follows/<name>            whom <name> follows -> {"name","follows":[...]}
 *   GET  /followers/<name>          who follows <name>  -> {"name","followers":[...]}
 *
 * Names are percent-decoded and written into the Cypher text as string
 * literals with \ and ' escaped, so a name can never become Cypher.  A graph
 * failure ("Graph query failure: ...") is an actor error (HTTP 500).
 */
#include <wascc/actor.h>
#include <wascc/json.h>

#define GRAPH "social"
#define MAX_NAME 256

static wapc_result text(uint32_t code, const char *status, const char *body) {
    return wapc_http_respond(code, status, "text/plain", body, wapc_strlen(body));
}

static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes (and '+' -> ' ') into out; the length, or -1 if too long. */
static int decode(const char *p, uint32_t n, char *out) {
    int len = 0;
    for (uint32_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '%' && i + 2 < n && hex(p[i + 1]) >= 0 && hex(p[i + 2]) >= 0) {
            c = (char)(hex(p[i + 1]) * 16 + hex(p[i + 2]));
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (len >= MAX_NAME) return -1;
        out[len++] = c;
    }
    return len;
}

/* The value of `key` in a query string, decoded; its length or -1. */
static int query_param(wascc_str qs, const char *key, char *out) {
    uint32_t i = 0;
    while (i < qs.n) {
        uint32_t start = i, eq = 0;
        while (i < qs.n && qs.p[i] != '&') {
            if (!eq && qs.p[i] == '=') eq = i;
            i++;
        }
        if (eq && wmp_eq(qs.p + start, eq - start, key))
            return decode(qs.p + eq + 1, i - eq - 1, out);
        i++;
    }
    return -1;
}

/* Appends a Cypher string literal: 'text' with \ and ' escaped. */
static void cypher_str(wmp_writer *w, const char *s, int n) {
    wmp_put(w, "'", 1);
    for (int i = 0; i < n; i++) {
        if (s[i] == '\\' || s[i] == '\'') wmp_put(w, "\\", 1);
        wmp_put(w, s + i, 1);
    }
    wmp_put(w, "'", 1);
}

static wapc_result graph_query(const wmp_writer *cypher) {
    if (cypher->err) return wapc_error("follows: out of memory");
    wascc_str query = {(const char *)cypher->buf, (uint32_t)cypher->len};
    wmp_writer w;
    wapc_writer(&w);
    wascc_graph_query_write(&w, GRAPH, query);
    return wapc_host_call_writer("default", "wascc:graphdb", "QueryGraph", &w);
}

static wapc_result follow(wascc_str qs) {
    char who[MAX_NAME], whom[MAX_NAME];
    int a = query_param(qs, "who", who), b = query_param(qs, "whom", whom);
    if (a <= 0 || b <= 0) return text(400, "Bad Request", "POST /follow?who=A&whom=B\n");
    wmp_writer c;
    wapc_writer(&c);
    wjson_raw(&c, "MERGE (a:Person {name: ");
    cypher_str(&c, who, a);
    wjson_raw(&c, "}) MERGE (b:Person {name: ");
    cypher_str(&c, whom, b);
    wjson_raw(&c, "}) MERGE (a)-[:FOLLOWS]->(b)");
    wapc_result r = graph_query(&c);
    if (!r.ok) return wapc_error2("follows: ", r.data, r.len);
    return text(200, "OK", "ok\n");
}

static wapc_result people(const char *name, int n, int followers) {
    wmp_writer c;
    wapc_writer(&c);
    wjson_raw(&c, followers ? "MATCH (p:Person)-[:FOLLOWS]->(:Person {name: "
                            : "MATCH (:Person {name: ");
    cypher_str(&c, name, n);
    wjson_raw(&c, followers ? "}) RETURN p.name ORDER BY p.name"
                            : "})-[:FOLLOWS]->(p:Person) RETURN p.name ORDER BY p.name");
    wapc_result r = graph_query(&c);
    if (!r.ok) return wapc_error2("follows: ", r.data, r.len);
    wascc_result_set rs;
    wascc_column col;
    if (wascc_result_set_decode(r.data, r.len, &rs) != 0 ||
        wascc_result_set_column(&rs, 0, &col) != 0)
        return wapc_error("follows: graphdb answered something that is not a one-column ResultSet");

    wmp_writer out;
    wapc_writer(&out);
    wjson_raw(&out, "{\"name\":");
    wjson_str(&out, name, (size_t)n);
    wjson_raw(&out, followers ? ",\"followers\":[" : ",\"follows\":[");
    for (uint32_t i = 0; i < col.count; i++) {
        wascc_scalar s;
        uint8_t buf[MAX_NAME];
        int64_t len;
        if (wascc_column_scalar(&col, i, &s) != 0 || (len = wascc_scalar_text(&s, buf, sizeof buf)) < 0)
            return wapc_error("follows: a name in the result is not a string");
        if (i) wjson_raw(&out, ",");
        wjson_str(&out, buf, (size_t)len);
    }
    wjson_raw(&out, "]}");
    return wapc_http_respond(200, "OK", "application/json", out.buf, out.len);
}

static wapc_result handle_request(const uint8_t *msg, size_t len) {
    wascc_http_request q;
    if (wascc_http_request_decode(msg, len, &q) != 0)
        return wapc_error("follows: the payload is not an HTTP request");
    if (wascc_str_eq(q.method, "POST") && wascc_str_eq(q.path, "/follow"))
        return follow(q.query_string);
    static const char *const routes[] = {"/follows/", "/followers/"};
    for (int r = 0; r < 2 && wascc_str_eq(q.method, "GET"); r++) {
        uint32_t plen = (uint32_t)wapc_strlen(routes[r]);
        if (q.path.n > plen && wmp_eq(q.path.p, plen, routes[r])) {
            char name[MAX_NAME];
            int n = decode(q.path.p + plen, q.path.n - plen, name);
            if (n <= 0) return text(400, "Bad Request", "a name of 1-256 bytes\n");
            return people(name, n, r == 1);
        }
    }
    return text(404, "Not Found", "POST /follow?who=&whom=, GET /follows/<name>, GET /followers/<name>\n");
}

void wapc_register_handlers(void) { wapc_register("HandleRequest", handle_request); }
