/*
 * wascc/provider.h - the native capability provider ABI of wascc, version 1.
 *
 * This header is the whole contract between a wascc host and a native
 * capability provider.  A provider is a shared object (.so / .dylib) written
 * in any language that can export a C function; it needs nothing else from
 * wascc.  The wire formats of the payloads (msgpack) are in the project's
 * CONTRACTS (sections 2 and 3); this file covers only the calling convention.
 *
 * ---------------------------------------------------------------------------
 * 1. Entry point
 *
 *     wascc_provider *__capability_provider_create(void);
 *
 * The host dlopen()s the library (it never unloads it) and calls this once
 * per registration: loading the same file under two binding names calls it
 * twice, and the two providers must not share state.  Return NULL to refuse
 * (the host reports "returned NULL" and goes on).  The returned struct and
 * its `state` belong to the provider until `destroy` is called.
 *
 * The first field is `abi_version`; the host reads it before anything else
 * and refuses a version it does not know.  Set it to
 * WASCC_PROVIDER_ABI_VERSION.
 *
 * ---------------------------------------------------------------------------
 * 2. Lifecycle, in order
 *
 *   create                 __capability_provider_create()
 *   GetCapabilityDescriptor  handle_call, before configure_dispatch: the host
 *                          learns the capability id before it registers you
 *   configure_dispatch     once, before any other handle_call; keep the
 *                          dispatcher
 *   handle_call            any number of times, from any host thread,
 *                          concurrently: "BindActor" / "RemoveActor" /
 *                          "HealthRequest" and the capability's own operations
 *   stop                   once; stop your threads and close your sockets,
 *                          and do not call the dispatcher after stop returns
 *   destroy                once, right after stop; free `state` and, if you
 *                          allocated it, the struct itself
 *
 * Re-binding is reconfiguration.  "BindActor" for an actor that is already
 * bound, with the same values, succeeds and changes nothing.  With different
 * values it is a reconfiguration: set up the new configuration first (open
 * the new port, the new file), and release the old one only once the new one
 * works; if the new one fails, keep the old one exactly as it was (listener,
 * sessions, state) and answer WASCC_ERROR naming the value and the reason.
 * The host never sends "RemoveActor" before a re-bind, so a bad re-bind must
 * not cost the actor its working binding.  When the new configuration uses
 * the same port as the old one, hand the open listening socket over (dup it)
 * rather than opening the port a second time.
 *
 * If the host refuses a provider (a bad descriptor, say) it calls stop and
 * destroy without configure_dispatch.  After destroy the host never touches
 * the struct again.
 *
 * ---------------------------------------------------------------------------
 * 3. handle_call
 *
 *     int32_t handle_call(void *state, const char *actor, const char *op,
 *                         const uint8_t *msg, size_t msg_len,
 *                         uint8_t **out, size_t *out_len);
 *
 * `actor` is the caller: an actor's 56-character public key, or "system" for
 * the host.  `op` is the operation name.  Both are NUL-terminated UTF-8 and
 * valid only during the call.  `msg` is the payload (msgpack by contract),
 * `msg_len` bytes, valid only during the call; it may be NULL when msg_len
 * is 0.
 *
 * Return WASCC_OK and set *out / *out_len to the reply, or return
 * WASCC_ERROR and set them to a UTF-8 error message (no NUL needed).
 * *out is allocated by the provider; the host copies it and then calls
 * free_buffer(state, *out) exactly once.  Set *out = NULL, *out_len = 0
 * for an empty reply (free_buffer is then not called).
 *
 * Core operations (send only by the host, with actor == "system"):
 *   "GetCapabilityDescriptor"  empty msg; reply CapabilityDescriptor
 *   "BindActor"                msg CapabilityConfiguration; empty reply.
 *                              Idempotent: binding a bound actor with the
 *                              same values succeeds; other values are a
 *                              reconfiguration (section 2).
 *   "RemoveActor"              msg CapabilityConfiguration; empty reply.
 *                              Idempotent: removing an unbound actor succeeds.
 *   "HealthRequest"            msg HealthRequest; reply HealthResponse.  The
 *                              host removes a provider that answers
 *                              unhealthy, fails, or takes too long.
 * Refuse these from any other origin.
 *
 * ---------------------------------------------------------------------------
 * 4. The dispatcher (provider -> actor)
 *
 * configure_dispatch receives a pointer to a wascc_dispatcher owned by the
 * host.  It stays valid from configure_dispatch until stop returns; copy the
 * pointer, not the struct.  dispatch() may be called from any thread the
 * provider owns, at any rate, concurrently, and blocks until the actor
 * answers:
 *
 *     int32_t dispatch(void *host_data, const char *actor, const char *op,
 *                      const uint8_t *msg, size_t msg_len,
 *                      uint8_t **out, size_t *out_len);
 *
 * Arguments as for handle_call; `actor` must be bound to this provider.  On
 * WASCC_OK *out holds the actor's reply, on WASCC_ERROR a UTF-8 error
 * message that starts with the kind of failure and ": " - the name of the
 * wascc error, most specific first among HostStopped, InstancesBusy,
 * InvocationTimeout, NotFound, NotBound, ProviderError, else the error's
 * own name (GuestError, ActorTrap...) - so a provider can answer by kind
 * (an HTTP server: 503, 504, 500) without reading the prose.  Either way *out is allocated by the host (NULL when *out_len is
 * 0) and the provider releases it with free_buffer(host_data, *out).  An
 * actor counts as bound from the moment its BindActor is sent until its
 * RemoveActor returns; dispatch to it from your own threads, not from inside
 * that BindActor or RemoveActor call.
 *
 * ---------------------------------------------------------------------------
 * 5. Threads and failure
 *
 * handle_call runs on host threads, possibly many at once: guard shared
 * state.  A provider must not call exit(), must not raise signals, and must
 * not block forever in handle_call: the host cannot interrupt native code,
 * and a call that blocks holds its caller.  Crashes take the host down:
 * native providers are trusted code with the host's privileges.
 */
#ifndef WASCC_PROVIDER_H
#define WASCC_PROVIDER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* cdef-begin */
#define WASCC_PROVIDER_ABI_VERSION 1

#define WASCC_OK 0
#define WASCC_ERROR 1

/* Handed by the host to configure_dispatch; owned by the host. */
typedef struct wascc_dispatcher {
    uint32_t abi_version;
    void *host_data;
    int32_t (*dispatch)(void *host_data, const char *actor, const char *op,
                        const uint8_t *msg, size_t msg_len,
                        uint8_t **out, size_t *out_len);
    void (*free_buffer)(void *host_data, uint8_t *buf);
} wascc_dispatcher;

/* Returned by __capability_provider_create; owned by the provider. */
typedef struct wascc_provider {
    uint32_t abi_version;
    void *state;
    int32_t (*configure_dispatch)(void *state, const wascc_dispatcher *dispatcher);
    int32_t (*handle_call)(void *state, const char *actor, const char *op,
                           const uint8_t *msg, size_t msg_len,
                           uint8_t **out, size_t *out_len);
    void (*free_buffer)(void *state, uint8_t *buf);
    void (*stop)(void *state);
    void (*destroy)(void *state);
} wascc_provider;
/* cdef-end */

typedef wascc_provider *(*wascc_provider_create_fn)(void);

/* Marks the entry point exported even when building with
 * -fvisibility=hidden:
 *     WASCC_EXPORT wascc_provider *__capability_provider_create(void) { ... } */
#if defined(_WIN32)
#define WASCC_EXPORT __declspec(dllexport)
#else
#define WASCC_EXPORT __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
}
#endif

#endif /* WASCC_PROVIDER_H */
