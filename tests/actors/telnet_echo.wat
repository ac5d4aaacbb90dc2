;; telnet_echo.wat - a waPC actor for wascc:telnet: echoes every line back.
;;
;; Operations (payload -> answer):
;;   SessionStarted  {session}        -> empty.  In the "greeter" build (the
;;                   tests rewrite $greet to 1) it first sends the session id
;;                   to the new client: SendText {session, text: <the id>},
;;                   made from the payload bytes without parsing msgpack.
;;   ReceiveText     {session, text}  -> calls __host_call("default",
;;                   "wascc:telnet", "SendText", <the same payload bytes>)
;;                   (ReceiveText has exactly SendText's shape) and answers
;;                   empty, or the host error as a guest error.
;;   Send            {session, text}  -> the same SendText for the host's
;;                   tests; answers the host response, or the host error as
;;                   a guest error.
;;   anything else   guest error "unknown operation"
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
  (import "wapc" "__console_log" (func $console_log (param i32 i32)))

  (memory (export "memory") 1)

  (global $greet i32 (i32.const 0)) ;; GREET
  (global $heap (mut i32) (i32.const 0))

  (data (i32.const 16) "SessionStarted")
  (data (i32.const 32) "ReceiveText")
  (data (i32.const 48) "Send")
  (data (i32.const 56) "default")
  (data (i32.const 64) "wascc:telnet")
  (data (i32.const 80) "SendText")
  (data (i32.const 88) "\a4text")
  (data (i32.const 96) "unknown operation")

  ;; Grow linear memory so that [0, end) is addressable.
  (func $ensure (param $end i32)
    (local $need i32)
    (local.set $need
      (i32.sub
        (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16))
        (memory.size)))
    (if (i32.gt_s (local.get $need) (i32.const 0))
      (then
        (if (i32.eq (memory.grow (local.get $need)) (i32.const -1))
          (then unreachable)))))

  ;; Byte-wise equality of two ranges.
  (func $eq (param $a i32) (param $alen i32) (param $b i32) (param $blen i32) (result i32)
    (local $i i32)
    (if (i32.ne (local.get $alen) (local.get $blen)) (then (return (i32.const 0))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $alen)))
        (if (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                    (i32.load8_u (i32.add (local.get $b) (local.get $i))))
          (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 1))

  ;; Allocate n bytes on a bump heap (reset for every call).
  (func $alloc (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (call $ensure (i32.add (local.get $p) (local.get $n)))
    (global.set $heap (i32.add (local.get $p) (local.get $n)))
    (local.get $p))

  ;; SendText with the payload at [p, p+n) on binding "default"; the status.
  (func $send_text (param $p i32) (param $n i32) (result i32)
    (call $host_call
      (i32.const 56) (i32.const 7) (i32.const 64) (i32.const 12) (i32.const 80) (i32.const 8)
      (local.get $p) (local.get $n)))

  ;; Answers the last host call's response (ok) or error (as a guest error).
  (func $answer_host (param $rc i32) (result i32)
    (local $n i32) (local $p i32)
    (if (i32.eq (local.get $rc) (i32.const 1))
      (then
        (local.set $n (call $host_response_len))
        (local.set $p (call $alloc (local.get $n)))
        (call $host_response (local.get $p))
        (call $guest_response (local.get $p) (local.get $n))
        (return (i32.const 1))))
    (local.set $n (call $host_error_len))
    (local.set $p (call $alloc (local.get $n)))
    (call $host_error (local.get $p))
    (call $guest_error (local.get $p) (local.get $n))
    (i32.const 0))

  ;; {session: S} -> {session: S, text: S}: 0x81 becomes 0x82, then "text"
  ;; and the session's value (everything after the 9 bytes 81 a7 "session").
  (func $greet_session (param $msg i32) (param $len i32)
    (local $out i32) (local $rest i32)
    (if (i32.lt_u (local.get $len) (i32.const 10)) (then (return)))
    (local.set $rest (i32.sub (local.get $len) (i32.const 9)))
    (local.set $out (call $alloc (i32.add (i32.add (local.get $len) (i32.const 5))
                                          (local.get $rest))))
    (memory.copy (local.get $out) (local.get $msg) (local.get $len))
    (i32.store8 (local.get $out) (i32.const 0x82))
    (memory.copy (i32.add (local.get $out) (local.get $len)) (i32.const 88) (i32.const 5))
    (memory.copy (i32.add (i32.add (local.get $out) (local.get $len)) (i32.const 5))
                 (i32.add (local.get $msg) (i32.const 9)) (local.get $rest))
    (drop (call $send_text (local.get $out)
      (i32.add (i32.add (local.get $len) (i32.const 5)) (local.get $rest)))))

  (func (export "__guest_call") (param $op_len i32) (param $msg_len i32) (result i32)
    (local $op i32) (local $msg i32) (local $end i32)
    (local.set $op (i32.const 1024))
    (local.set $msg (i32.add (local.get $op) (local.get $op_len)))
    (local.set $end (i32.add (local.get $msg) (local.get $msg_len)))
    (call $ensure (local.get $end))
    (global.set $heap (i32.and (i32.add (local.get $end) (i32.const 15)) (i32.const -16)))
    (call $guest_request (local.get $op) (local.get $msg))

    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 16) (i32.const 14))
      (then
        (if (global.get $greet)
          (then (call $greet_session (local.get $msg) (local.get $msg_len))))
        (call $guest_response (local.get $msg) (i32.const 0))
        (return (i32.const 1))))
    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 32) (i32.const 11))
      (then
        (if (i32.eq (call $send_text (local.get $msg) (local.get $msg_len)) (i32.const 1))
          (then
            (call $guest_response (local.get $msg) (i32.const 0))
            (return (i32.const 1))))
        (return (call $answer_host (i32.const 0)))))
    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 48) (i32.const 4))
      (then
        (return (call $answer_host
          (call $send_text (local.get $msg) (local.get $msg_len))))))
    (call $guest_error (i32.const 96) (i32.const 17))
    (i32.const 0))
)
