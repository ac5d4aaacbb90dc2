/*
 * logger - writes one log line at each level through wascc:logging.
 *
 * Capabilities: wascc:http_server (HandleRequest), wascc:logging (WriteLog).
 * Each request logs "<LEVEL> <method> <path>" at ERROR, WARN, INFO, DEBUG
 * and TRACE (the logging binding's LEVEL decides which are written) and a
 * console line, then answers 200 "logged 5 lines".
 */
#include <wascc/actor.h>

static const struct {
    uint32_t level;
    const char *name;
} LEVELS[] = {
    {WASCC_LOG_ERROR, "ERROR"}, {WASCC_LOG_WARN, "WARN"},   {WASCC_LOG_INFO, "INFO"},
    {WASCC_LOG_DEBUG, "DEBUG"}, {WASCC_LOG_TRACE, "TRACE"},
};

static char *line_for(const char *level, wascc_str method, wascc_str path) {
    size_t n = wapc_strlen(level);
    char *line = (char *)wapc_alloc(n + method.n + path.n + 3);
    if (!line) return 0;
    char *p = line;
    wmp_copy(p, level, n);
    p += n;
    *p++ = ' ';
    wmp_copy(p, method.p, method.n);
    p += method.n;
    *p++ = ' ';
    wmp_copy(p, path.p, path.n);
    p += path.n;
    *p = 0;
    return line;
}

static wapc_result handle_request(const uint8_t *msg, size_t len) {
    wascc_http_request q;
    if (wascc_http_request_decode(msg, len, &q) != 0)
        return wapc_error("logger: the payload is not an HTTP request");
    for (unsigned i = 0; i < sizeof LEVELS / sizeof LEVELS[0]; i++) {
        char *line = line_for(LEVELS[i].name, q.method, q.path);
        if (!line) return wapc_error("logger: out of memory");
        wmp_writer w;
        wapc_writer(&w);
        wascc_write_log_write(&w, LEVELS[i].level, line);
        wapc_result r = wapc_host_call_writer("default", "wascc:logging", "WriteLog", &w);
        if (!r.ok) return wapc_error2("logger: WriteLog failed: ", r.data, r.len);
    }
    wapc_log("logger: wrote one line at each level");
    static const char body[] = "logged 5 lines\n";
    return wapc_http_respond(200, "OK", "text/plain", body, sizeof body - 1);
}

void wapc_register_handlers(void) { wapc_register("HandleRequest", handle_request); }
