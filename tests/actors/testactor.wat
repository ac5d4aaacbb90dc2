;; testactor.wat - a waPC actor for the host's tests, one operation per behaviour.
;;
;; Operations (payload -> answer):
;;   Echo           msg -> msg
;;   Fail           msg -> guest error "msg", returns 0
;;   ErrorOk        msg -> guest error "msg", returns 1 (still an error)
;;   NoResponse     returns 1 without a response (an error)
;;   Trap           traps (unreachable)
;;   ErrorTrap      sets guest error "msg", then traps (as aborting guests do)
;;   Loop           loops forever (stopped by the deadline)
;;   Grow           grows memory until refused, then traps (a memory bomb)
;;   GrowOnce       grows memory by `msg[0]` pages and answers (stays near the cap)
;;   Log            __console_log(msg), answers empty
;;   Call           msg = [bd_len u8][bd][ns_len u8][ns][op_len u8][op][payload...]
;;                  does one __host_call; answers the host response, or the host
;;                  error as a guest error
;;   CallTwice      like Call, twice in a row; answers both results concatenated
;;   HealthRequest  answers msgpack {"healthy": true, "message": ""}
;;   Version        answers VERSION (the tests rewrite it to make a second build)
;;   Init           answers what _start and wapc_init wrote, in call order
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
  (import "wapc" "__console_log" (func $console_log (param i32 i32)))

  (memory (export "memory") 1)

  (global $init_pos (mut i32) (i32.const 512))
  (global $heap (mut i32) (i32.const 0))

  (data (i32.const 16) "Echo")
  (data (i32.const 24) "Fail")
  (data (i32.const 32) "Trap")
  (data (i32.const 40) "Loop")
  (data (i32.const 48) "Grow")
  (data (i32.const 56) "Call")
  (data (i32.const 64) "Log")
  (data (i32.const 72) "HealthRequest")
  (data (i32.const 96) "NoResponse")
  (data (i32.const 112) "ErrorOk")
  (data (i32.const 128) "Version")
  (data (i32.const 144) "VERSION1")
  (data (i32.const 160) "\82\a7healthy\c3\a7message\a0")
  (data (i32.const 192) "unknown operation")
  (data (i32.const 216) "Init")
  (data (i32.const 224) "GrowOnce")
  (data (i32.const 240) "CallTwice")
  (data (i32.const 256) "ErrorTrap")

  ;; _start and wapc_init each append a letter, so Init shows the order.
  (func (export "_start")
    (i32.store8 (global.get $init_pos) (i32.const 83)) ;; 'S'
    (global.set $init_pos (i32.add (global.get $init_pos) (i32.const 1))))
  (func (export "wapc_init")
    (i32.store8 (global.get $init_pos) (i32.const 87)) ;; 'W'
    (global.set $init_pos (i32.add (global.get $init_pos) (i32.const 1))))

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

  ;; One host call described by the payload at $p; result at $out_ptr/$out_len
  ;; (written to the globals below). Returns the __host_call status.
  (global $out_ptr (mut i32) (i32.const 0))
  (global $out_len (mut i32) (i32.const 0))
  (func $do_call (param $p i32) (param $end i32) (result i32)
    (local $bd i32) (local $bdl i32) (local $ns i32) (local $nsl i32)
    (local $op i32) (local $opl i32) (local $pl i32) (local $rc i32) (local $n i32)
    (local.set $bdl (i32.load8_u (local.get $p)))
    (local.set $bd (i32.add (local.get $p) (i32.const 1)))
    (local.set $nsl (i32.load8_u (i32.add (local.get $bd) (local.get $bdl))))
    (local.set $ns (i32.add (i32.add (local.get $bd) (local.get $bdl)) (i32.const 1)))
    (local.set $opl (i32.load8_u (i32.add (local.get $ns) (local.get $nsl))))
    (local.set $op (i32.add (i32.add (local.get $ns) (local.get $nsl)) (i32.const 1)))
    (local.set $pl (i32.add (local.get $op) (local.get $opl)))
    (local.set $rc
      (call $host_call
        (local.get $bd) (local.get $bdl) (local.get $ns) (local.get $nsl)
        (local.get $op) (local.get $opl)
        (local.get $pl) (i32.sub (local.get $end) (local.get $pl))))
    (if (i32.eq (local.get $rc) (i32.const 1))
      (then
        (local.set $n (call $host_response_len))
        (global.set $out_ptr (call $alloc (local.get $n)))
        (call $host_response (global.get $out_ptr)))
      (else
        (local.set $n (call $host_error_len))
        (global.set $out_ptr (call $alloc (local.get $n)))
        (call $host_error (global.get $out_ptr))))
    (global.set $out_len (local.get $n))
    (local.get $rc))

  (func (export "__guest_call") (param $op_len i32) (param $msg_len i32) (result i32)
    (local $op i32) (local $msg i32) (local $end i32) (local $first i32) (local $n i32)
    (local.set $op (i32.const 1024))
    (local.set $msg (i32.add (local.get $op) (local.get $op_len)))
    (local.set $end (i32.add (local.get $msg) (local.get $msg_len)))
    (call $ensure (local.get $end))
    (global.set $heap (i32.and (i32.add (local.get $end) (i32.const 15)) (i32.const -16)))
    (call $guest_request (local.get $op) (local.get $msg))

    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 16) (i32.const 4))
      (then
        (call $guest_response (local.get $msg) (local.get $msg_len))
        (return (i32.const 1))))
    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 24) (i32.const 4))
      (then
        (call $guest_error (local.get $msg) (local.get $msg_len))
        (return (i32.const 0))))
    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 112) (i32.const 7))
      (then
        (call $guest_error (local.get $msg) (local.get $msg_len))
        (return (i32.const 1))))
    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 96) (i32.const 10))
      (then (return (i32.const 1))))
    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 32) (i32.const 4))
      (then unreachable))
    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 256) (i32.const 9))
      (then
        (call $guest_error (local.get $msg) (local.get $msg_len))
        unreachable))
    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 40) (i32.const 4))
      (then (loop $forever (br $forever))))
    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 48) (i32.const 4))
      (then
        (loop $more
          (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1)) (then unreachable))
          (br $more))))
    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 224) (i32.const 8))
      (then
        (if (i32.eq (memory.grow (i32.load8_u (local.get $msg))) (i32.const -1))
          (then unreachable))
        (call $guest_response (local.get $msg) (i32.const 0))
        (return (i32.const 1))))
    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 64) (i32.const 3))
      (then
        (call $console_log (local.get $msg) (local.get $msg_len))
        (call $guest_response (local.get $msg) (i32.const 0))
        (return (i32.const 1))))
    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 56) (i32.const 4))
      (then
        (if (i32.eq (call $do_call (local.get $msg) (local.get $end)) (i32.const 1))
          (then
            (call $guest_response (global.get $out_ptr) (global.get $out_len))
            (return (i32.const 1))))
        (call $guest_error (global.get $out_ptr) (global.get $out_len))
        (return (i32.const 0))))
    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 240) (i32.const 9))
      (then
        (drop (call $do_call (local.get $msg) (local.get $end)))
        (local.set $first (global.get $out_ptr))
        (local.set $n (global.get $out_len))
        (drop (call $do_call (local.get $msg) (local.get $end)))
        ;; the second result sits right after the first on the bump heap
        (call $guest_response (local.get $first)
          (i32.add (local.get $n) (global.get $out_len)))
        (return (i32.const 1))))
    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 72) (i32.const 13))
      (then
        (call $guest_response (i32.const 160) (i32.const 19))
        (return (i32.const 1))))
    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 128) (i32.const 7))
      (then
        (call $guest_response (i32.const 144) (i32.const 8))
        (return (i32.const 1))))
    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 216) (i32.const 4))
      (then
        (call $guest_response (i32.const 512)
          (i32.sub (global.get $init_pos) (i32.const 512)))
        (return (i32.const 1))))
    (call $guest_error (i32.const 192) (i32.const 17))
    (i32.const 0))
)
