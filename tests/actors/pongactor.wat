;; pongactor.wat - a waPC actor that calls a provider and answers its Pong.
;;
;; Operations (payload -> answer):
;;   Call           msg = [bd_len u8][bd][ns_len u8][ns][op_len u8][op][payload...]
;;                  (the test actor's format) does one __host_call; answers the
;;                  host response, or the host error as a guest error
;;   Pong           msg -> "PONG " + msg
;;   anything else  guest error "unknown operation"
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

  (data (i32.const 16) "Call")
  (data (i32.const 24) "Pong")
  (data (i32.const 32) "PONG ")
  (data (i32.const 48) "unknown operation")

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

  ;; Is the 4-byte operation name at $op (length $len) the one at $name?
  (func $is (param $op i32) (param $len i32) (param $name i32) (result i32)
    (i32.and
      (i32.eq (local.get $len) (i32.const 4))
      (i32.eq (i32.load (local.get $op)) (i32.load (local.get $name)))))

  (func (export "__guest_call") (param $op_len i32) (param $msg_len i32) (result i32)
    (local $op i32) (local $msg i32) (local $end i32) (local $out i32) (local $n i32)
    (local $bd i32) (local $bdl i32) (local $ns i32) (local $nsl i32)
    (local $cop i32) (local $copl i32) (local $pl i32)
    (local.set $op (i32.const 1024))
    (local.set $msg (i32.add (local.get $op) (local.get $op_len)))
    (local.set $end (i32.add (local.get $msg) (local.get $msg_len)))
    (local.set $out (i32.and (i32.add (local.get $end) (i32.const 15)) (i32.const -16)))
    (call $ensure (i32.add (local.get $out) (i32.add (local.get $msg_len) (i32.const 5))))
    (call $guest_request (local.get $op) (local.get $msg))

    (if (call $is (local.get $op) (local.get $op_len) (i32.const 24))
      (then
        (memory.copy (local.get $out) (i32.const 32) (i32.const 5))
        (memory.copy
          (i32.add (local.get $out) (i32.const 5)) (local.get $msg) (local.get $msg_len))
        (call $guest_response (local.get $out) (i32.add (local.get $msg_len) (i32.const 5)))
        (return (i32.const 1))))

    (if (call $is (local.get $op) (local.get $op_len) (i32.const 16))
      (then
        (local.set $bdl (i32.load8_u (local.get $msg)))
        (local.set $bd (i32.add (local.get $msg) (i32.const 1)))
        (local.set $nsl (i32.load8_u (i32.add (local.get $bd) (local.get $bdl))))
        (local.set $ns (i32.add (i32.add (local.get $bd) (local.get $bdl)) (i32.const 1)))
        (local.set $copl (i32.load8_u (i32.add (local.get $ns) (local.get $nsl))))
        (local.set $cop (i32.add (i32.add (local.get $ns) (local.get $nsl)) (i32.const 1)))
        (local.set $pl (i32.add (local.get $cop) (local.get $copl)))
        (if (i32.eq
              (call $host_call
                (local.get $bd) (local.get $bdl) (local.get $ns) (local.get $nsl)
                (local.get $cop) (local.get $copl)
                (local.get $pl) (i32.sub (local.get $end) (local.get $pl)))
              (i32.const 1))
          (then
            (local.set $n (call $host_response_len))
            (call $ensure (i32.add (local.get $out) (local.get $n)))
            (call $host_response (local.get $out))
            (call $guest_response (local.get $out) (local.get $n))
            (return (i32.const 1))))
        (local.set $n (call $host_error_len))
        (call $ensure (i32.add (local.get $out) (local.get $n)))
        (call $host_error (local.get $out))
        (call $guest_error (local.get $out) (local.get $n))
        (return (i32.const 0))))

    (call $guest_error (i32.const 48) (i32.const 17))
    (i32.const 0))
)
