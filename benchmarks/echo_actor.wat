;; The waPC echo actor shared by every wascc-side benchmark peer.
;;
;; Operations:
;;   "Echo"     -> answers with the request payload.
;;   "HostEcho" -> one __host_call(binding "default", namespace "wascc:bench",
;;                 operation "Echo", payload = the request) and answers with
;;                 the host response (or hands the host error back as its own).
;;   "KvGet"    -> the same with namespace "wascc:keyvalue", operation "Get"
;;                 (payload = a msgpack GetRequest): one round trip to a
;;                 keyvalue provider.
;; Anything else is a guest error.
;;
;; Layout of linear memory: constant strings below 1024, then the operation
;; name at 1024, the request payload right after it, and a host response
;; right after the payload.  Memory grows as needed.
(module
  (import "wapc" "__guest_request" (func $guest_request (param i32 i32)))
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (import "wapc" "__guest_error" (func $guest_error (param i32 i32)))
  (import "wapc" "__host_call"
    (func $host_call (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wapc" "__host_response_len" (func $host_response_len (result i32)))
  (import "wapc" "__host_response" (func $host_response (param i32)))
  (import "wapc" "__host_error_len" (func $host_error_len (result i32)))
  (import "wapc" "__host_error" (func $host_error (param i32)))

  (memory (export "memory") 1)

  (data (i32.const 0) "default")            ;; binding, 7 bytes
  (data (i32.const 16) "wascc:bench")       ;; namespace, 11 bytes
  (data (i32.const 32) "Echo")              ;; 4 bytes
  (data (i32.const 40) "HostEcho")          ;; 8 bytes
  (data (i32.const 64) "unknown operation") ;; 17 bytes
  (data (i32.const 96) "out of memory")     ;; 13 bytes
  (data (i32.const 112) "wascc:keyvalue")   ;; 14 bytes
  (data (i32.const 128) "Get")              ;; 3 bytes
  (data (i32.const 136) "KvGet")            ;; 5 bytes

  (global $OP i32 (i32.const 1024))

  ;; Grow memory so that [0, end) is addressable; 0 if it cannot.
  (func $ensure (param $end i32) (result i32)
    (local $have i32)
    (local.set $have (i32.shl (memory.size) (i32.const 16)))
    (if (i32.le_u (local.get $end) (local.get $have))
      (then (return (i32.const 1))))
    (i32.ne
      (memory.grow
        (i32.shr_u
          (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 0xFFFF))
          (i32.const 16)))
      (i32.const -1)))

  ;; Fail the call with the guest error at [ptr, ptr+len).
  (func $fail (param $ptr i32) (param $len i32) (result i32)
    (call $guest_error (local.get $ptr) (local.get $len))
    (i32.const 0))

  ;; Forward [msg, msg+len) to the host as operation [op, op+op_len) of
  ;; namespace [ns, ns+ns_len) on binding "default"; answer with its reply.
  (func $forward (param $ns i32) (param $ns_len i32) (param $op i32) (param $op_len i32)
                 (param $msg i32) (param $len i32) (result i32)
    (local $out i32)
    (local $n i32)
    (local.set $out (i32.add (local.get $msg) (local.get $len)))
    (if (i32.eqz
          (call $host_call
            (i32.const 0) (i32.const 7)
            (local.get $ns) (local.get $ns_len)
            (local.get $op) (local.get $op_len)
            (local.get $msg) (local.get $len)))
      (then
        (local.set $n (call $host_error_len))
        (if (i32.eqz (call $ensure (i32.add (local.get $out) (local.get $n))))
          (then (return (call $fail (i32.const 96) (i32.const 13)))))
        (call $host_error (local.get $out))
        (return (call $fail (local.get $out) (local.get $n)))))
    (local.set $n (call $host_response_len))
    (if (i32.eqz (call $ensure (i32.add (local.get $out) (local.get $n))))
      (then (return (call $fail (i32.const 96) (i32.const 13)))))
    (call $host_response (local.get $out))
    (call $guest_response (local.get $out) (local.get $n))
    (i32.const 1))

  (func (export "__guest_call") (param $op_len i32) (param $msg_len i32) (result i32)
    (local $msg i32)
    (local.set $msg (i32.add (global.get $OP) (local.get $op_len)))
    (if (i32.eqz (call $ensure (i32.add (local.get $msg) (local.get $msg_len))))
      (then (return (call $fail (i32.const 96) (i32.const 13)))))
    (call $guest_request (global.get $OP) (local.get $msg))
    (if (i32.and
          (i32.eq (local.get $op_len) (i32.const 4))
          (i32.eq (i32.load (global.get $OP)) (i32.load (i32.const 32))))
      (then
        (call $guest_response (local.get $msg) (local.get $msg_len))
        (return (i32.const 1))))
    (if (i32.and
          (i32.eq (local.get $op_len) (i32.const 8))
          (i64.eq (i64.load (global.get $OP)) (i64.load (i32.const 40))))
      (then (return (call $forward (i32.const 16) (i32.const 11) (i32.const 32) (i32.const 4)
                                   (local.get $msg) (local.get $msg_len)))))
    (if (i32.and
          (i32.eq (local.get $op_len) (i32.const 5))
          (i32.and
            (i32.eq (i32.load (global.get $OP)) (i32.load (i32.const 136)))
            (i32.eq (i32.load8_u (i32.add (global.get $OP) (i32.const 4)))
                    (i32.load8_u (i32.const 140)))))
      (then (return (call $forward (i32.const 112) (i32.const 14) (i32.const 128) (i32.const 3)
                                   (local.get $msg) (local.get $msg_len)))))
    (call $fail (i32.const 64) (i32.const 17)))
)
