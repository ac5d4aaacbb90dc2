;; The built-in demo actor: answers every operation with its payload.
;; wascc signs it at start-up with keys generated on the spot.
(module
  (import "wapc" "__guest_request" (func $guest_request (param i32 i32)))
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (import "wapc" "__console_log" (func $console_log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "echo actor ready")
  (func (export "wapc_init")
    (call $console_log (i32.const 16) (i32.const 16)))
  (func (export "__guest_call") (param $op_len i32) (param $msg_len i32) (result i32)
    (local $msg i32) (local $need i32)
    (local.set $msg (i32.add (i32.const 1024) (local.get $op_len)))
    (local.set $need
      (i32.sub
        (i32.shr_u (i32.add (i32.add (local.get $msg) (local.get $msg_len)) (i32.const 65535))
                   (i32.const 16))
        (memory.size)))
    (if (i32.gt_s (local.get $need) (i32.const 0))
      (then (if (i32.eq (memory.grow (local.get $need)) (i32.const -1)) (then unreachable))))
    (call $guest_request (i32.const 1024) (local.get $msg))
    (call $guest_response (local.get $msg) (local.get $msg_len))
    (i32.const 1)))
