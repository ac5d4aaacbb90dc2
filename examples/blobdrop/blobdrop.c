/*
 * blobdrop - stores HTTP uploads in wascc:blobstore and serves them back.
 *
 * Capabilities: wascc:http_server (HandleRequest), wascc:blobstore.
 * Every blob lives in the container "blobdrop"; a name is one path segment.
 *
 *   PUT    /<name>   the body becomes blob <name>, sent in 64 KiB chunks
 *                    (StartUpload + UploadChunk)  -> 201 {"stored","bytes"}
 *   GET    /         ListObjects                  -> 200 {"blobs":[{"id","bytes"}]}
 *   GET    /<name>   the blob's bytes, or 404.  The blobstore hands a download
 *                    back asynchronously, as ReceiveChunk calls from a
 *                    provider thread; this actor keeps the last downloaded
 *                    blob (up to 1 MiB) in its memory.  So the first GET
 *                    starts the download and answers 202 ("try again"); the
 *                    next one answers 200 with the bytes.  (Each instance of
 *                    an actor has its own memory: run it with one instance,
 *                    or expect a 202 per instance.)
 *   DELETE /<name>   RemoveObject                 -> 204
 */
#include <wascc/actor.h>
#include <wascc/json.h>

#define CONTAINER "blobdrop"
#define CHUNK (64u * 1024u)
#define CACHE_MAX (1024u * 1024u)

static uint8_t cache[CACHE_MAX];
static char cache_name[256];
static uint32_t cache_name_len;
static uint64_t cache_total, cache_have;
static int cache_done;

static wascc_str str_of(const char *p, uint32_t n) {
    wascc_str s = {p, n};
    return s;
}

static wapc_result json_reply(uint32_t code, const char *status, const wmp_writer *body) {
    return wapc_http_respond(code, status, "application/json", body->buf, body->len);
}

static wapc_result call(const char *operation, const wmp_writer *w) {
    return wapc_host_call_writer("default", "wascc:blobstore", operation, w);
}

static wapc_result upload(wascc_str name, const uint8_t *body, uint32_t len) {
    wmp_writer w;
    wapc_writer(&w);
    wascc_container_write(&w, wascc_cstr(CONTAINER));
    wapc_result r = call("CreateContainer", &w);
    if (!r.ok) return wapc_error2("blobdrop: CreateContainer failed: ", r.data, r.len);

    wascc_file_chunk c = {0, len, CHUNK, wascc_cstr(CONTAINER), name, {"", 0}, 0, 0};
    wapc_writer(&w);
    wascc_file_chunk_write(&w, &c);
    r = call("StartUpload", &w);
    if (!r.ok) return wapc_error2("blobdrop: StartUpload failed: ", r.data, r.len);
    for (uint32_t off = 0; off < len; off += CHUNK) {
        c.bytes = body + off;
        c.bytes_len = len - off < CHUNK ? len - off : CHUNK;
        wapc_writer(&w);
        wascc_file_chunk_write(&w, &c);
        r = call("UploadChunk", &w);
        if (!r.ok) return wapc_error2("blobdrop: UploadChunk failed: ", r.data, r.len);
        c.sequence_no++;
    }
    cache_done = 0; /* whatever this instance kept may be stale now */

    wmp_writer out;
    wapc_writer(&out);
    wjson_raw(&out, "{\"stored\":");
    wjson_str(&out, name.p, name.n);
    wjson_raw(&out, ",\"bytes\":");
    wjson_int(&out, len);
    wjson_raw(&out, "}");
    return json_reply(201, "Created", &out);
}

static wapc_result list(void) {
    wmp_writer w;
    wapc_writer(&w);
    wascc_container_write(&w, wascc_cstr(CONTAINER));
    wapc_result r = call("ListObjects", &w);
    wmp_writer out;
    wapc_writer(&out);
    wjson_raw(&out, "{\"blobs\":[");
    wascc_blob_list blobs;
    if (r.ok) {
        if (wascc_blob_list_decode(r.data, r.len, &blobs) != 0)
            return wapc_error("blobdrop: ListObjects answered something that is not a BlobList");
        for (uint32_t i = 0; i < blobs.count; i++) {
            wascc_blob b;
            if (wascc_blob_list_at(&blobs, i, &b) != 0) break;
            if (i) wjson_raw(&out, ",");
            wjson_raw(&out, "{\"id\":");
            wjson_str(&out, b.id.p, b.id.n);
            wjson_raw(&out, ",\"bytes\":");
            wjson_int(&out, (int64_t)b.byte_size);
            wjson_raw(&out, "}");
        }
    } /* no container yet: nothing stored */
    wjson_raw(&out, "]}");
    return json_reply(200, "OK", &out);
}

static wapc_result fetch(wascc_str name) {
    wmp_writer w;
    wapc_writer(&w);
    wascc_blob_write(&w, wascc_cstr(CONTAINER), name);
    wapc_result r = call("GetObjectInfo", &w);
    if (!r.ok) return wapc_error2("blobdrop: GetObjectInfo failed: ", r.data, r.len);
    wascc_blob info;
    if (wascc_blob_decode(r.data, r.len, &info) != 0)
        return wapc_error("blobdrop: GetObjectInfo answered something that is not a Blob");
    if (wascc_blob_is_none(&info))
        return wapc_http_respond(404, "Not Found", "text/plain", "no such blob\n", 13);
    if (info.byte_size > CACHE_MAX)
        return wapc_http_respond(413, "Payload Too Large", "text/plain",
                                 "blobdrop serves blobs of up to 1 MiB\n", 37);
    if (cache_done && cache_name_len == name.n && cache_total == info.byte_size &&
        wmp_eq(name.p, name.n, cache_name))
        return wapc_http_respond(200, "OK", "application/octet-stream", cache, cache_total);

    wapc_writer(&w);
    wascc_stream_request_write(&w, wascc_cstr(CONTAINER), name, CHUNK, name);
    r = call("StartDownload", &w);
    if (!r.ok) return wapc_error2("blobdrop: StartDownload failed: ", r.data, r.len);
    wmp_writer out;
    wapc_writer(&out);
    wjson_raw(&out, "{\"status\":\"downloading\",\"retry\":true}");
    return json_reply(202, "Accepted", &out);
}

static wapc_result remove_blob(wascc_str name) {
    wmp_writer w;
    wapc_writer(&w);
    wascc_blob_write(&w, wascc_cstr(CONTAINER), name);
    wapc_result r = call("RemoveObject", &w);
    if (!r.ok) return wapc_http_respond(404, "Not Found", "text/plain", r.data, r.len);
    cache_done = 0;
    return wapc_http_respond(204, "No Content", NULL, "", 0);
}

static wapc_result handle_request(const uint8_t *msg, size_t len) {
    wascc_http_request q;
    if (wascc_http_request_decode(msg, len, &q) != 0)
        return wapc_error("blobdrop: the payload is not an HTTP request");
    if (q.path.n < 1 || q.path.p[0] != '/')
        return wapc_http_respond(400, "Bad Request", "text/plain", "bad path\n", 9);
    wascc_str name = str_of(q.path.p + 1, q.path.n - 1);
    for (uint32_t i = 0; i < name.n; i++)
        if (name.p[i] == '/')
            return wapc_http_respond(400, "Bad Request", "text/plain",
                                     "a blob name is one path segment\n", 32);
    if (name.n >= sizeof cache_name)
        return wapc_http_respond(400, "Bad Request", "text/plain", "name too long\n", 14);
    if (wascc_str_eq(q.method, "GET")) return name.n ? fetch(name) : list();
    if (!name.n) return wapc_http_respond(400, "Bad Request", "text/plain", "name a blob\n", 12);
    if (wascc_str_eq(q.method, "PUT")) return upload(name, q.body, q.body_len);
    if (wascc_str_eq(q.method, "DELETE")) return remove_blob(name);
    return wapc_http_respond(405, "Method Not Allowed", "text/plain", "GET, PUT or DELETE\n", 19);
}

/* A chunk of a download this actor started (context = the blob's name). */
static wapc_result receive_chunk(const uint8_t *msg, size_t len) {
    wascc_file_chunk c;
    if (wascc_file_chunk_decode(msg, len, &c) != 0)
        return wapc_error("blobdrop: the payload is not a FileChunk");
    if (c.total_bytes > CACHE_MAX || c.context.n >= sizeof cache_name)
        return wapc_error("blobdrop: a chunk of a blob too large to keep");
    if (c.sequence_no == 0) {
        for (uint32_t i = 0; i < c.context.n; i++) cache_name[i] = c.context.p[i];
        cache_name[c.context.n] = 0;
        cache_name_len = c.context.n;
        cache_total = c.total_bytes;
        cache_have = 0;
        cache_done = 0;
    }
    if (cache_name_len != c.context.n || !wmp_eq(c.context.p, c.context.n, cache_name) ||
        cache_have + c.bytes_len > cache_total)
        return wapc_error("blobdrop: a chunk out of order");
    for (uint32_t i = 0; i < c.bytes_len; i++) cache[cache_have + i] = c.bytes[i];
    cache_have += c.bytes_len;
    cache_done = cache_have == cache_total;
    return wapc_ok("", 0);
}

void wapc_register_handlers(void) {
    wapc_register("HandleRequest", handle_request);
    wapc_register("ReceiveChunk", receive_chunk);
}
