;; testcomponent.wat - a component for the host's tests, one operation per behaviour
;; (the component twin of tests/actors/testactor.wat).
;;
;; Imports wasi:logging/logging and wascc:actor/host; exports
;; wascc:actor/guest.call(operation, payload) -> result<list<u8>, string>:
;;   Echo     msg -> msg
;;   Fail     msg -> error msg
;;   Trap     traps (unreachable)
;;   Loop     loops forever (stopped by the deadline)
;;   Log      wasi:logging log(info, "test", msg), answers empty
;;   Call     msg = [bd_len u8][bd][ns_len u8][ns][op_len u8][op][payload...]:
;;            wascc:actor/host.call; answers its reply, or its error as an error
;;   Version  answers VERSION1 (the tests rewrite it to make a second build)
;;   Grow     grows linear memory a page at a time until refused; answers the
;;            pages it has then, one byte per decimal digit
;;   anything else: error "unknown operation"
(component
  (type $level (enum "trace" "debug" "info" "warn" "error" "critical"))
  (import "wasi:logging/logging" (instance $logging
    (export "level" (type $lvl (eq $level)))
    (export "log" (func (param "level" $lvl) (param "context" string) (param "message" string)))
  ))
  (import "wascc:actor/host" (instance $host
    (export "call" (func (param "binding" string) (param "namespace" string)
      (param "operation" string) (param "payload" (list u8))
      (result (result (list u8) (error string)))))
  ))
  (core module $mem
    (memory (export "memory") 2)
    (global $heap (mut i32) (i32.const 65536))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.xor (i32.sub (local.get 2) (i32.const 1)) (i32.const -1))))
      (global.set $heap (i32.add (local.get $p) (local.get 3)))
      (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
        (then (drop (memory.grow (i32.const 1)))))
      (local.get $p)))
  (core instance $memi (instantiate $mem))
  (core func $log (canon lower (func $logging "log") (memory (core memory $memi "memory"))))
  (core func $call (canon lower (func $host "call")
    (memory (core memory $memi "memory")) (realloc (core func $memi "realloc"))))
  (core module $m
    (import "env" "memory" (memory 1))
    (import "imports" "log" (func $log (param i32 i32 i32 i32 i32)))
    (import "imports" "call" (func $call (param i32 i32 i32 i32 i32 i32 i32 i32 i32)))
    (data (i32.const 16) "Echo")
    (data (i32.const 24) "Fail")
    (data (i32.const 32) "Trap")
    (data (i32.const 40) "Loop")
    (data (i32.const 48) "Log")
    (data (i32.const 56) "Call")
    (data (i32.const 64) "Version")
    (data (i32.const 80) "VERSION1")
    (data (i32.const 96) "test")
    (data (i32.const 112) "unknown operation")
    (data (i32.const 136) "Grow")
    (func $eq (param $a i32) (param $al i32) (param $b i32) (param $bl i32) (result i32)
      (local $i i32)
      (if (i32.ne (local.get $al) (local.get $bl)) (then (return (i32.const 0))))
      (block $done (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $al)))
        (if (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                    (i32.load8_u (i32.add (local.get $b) (local.get $i))))
          (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
      (i32.const 1))
    (func $answer (param $tag i32) (param $p i32) (param $l i32) (result i32)
      (i32.store8 (i32.const 2048) (local.get $tag))
      (i32.store (i32.const 2052) (local.get $p))
      (i32.store (i32.const 2056) (local.get $l))
      (i32.const 2048))
    (func (export "call") (param $op i32) (param $opl i32) (param $p i32) (param $pl i32) (result i32)
      (local $q i32) (local $bl i32) (local $nl i32) (local $ol i32)
      (if (call $eq (local.get $op) (local.get $opl) (i32.const 16) (i32.const 4))
        (then (return (call $answer (i32.const 0) (local.get $p) (local.get $pl)))))
      (if (call $eq (local.get $op) (local.get $opl) (i32.const 24) (i32.const 4))
        (then (return (call $answer (i32.const 1) (local.get $p) (local.get $pl)))))
      (if (call $eq (local.get $op) (local.get $opl) (i32.const 32) (i32.const 4))
        (then unreachable))
      (if (call $eq (local.get $op) (local.get $opl) (i32.const 40) (i32.const 4))
        (then (loop $forever (br $forever))))
      (if (call $eq (local.get $op) (local.get $opl) (i32.const 48) (i32.const 3))
        (then
          (call $log (i32.const 2) (i32.const 96) (i32.const 4) (local.get $p) (local.get $pl))
          (return (call $answer (i32.const 0) (i32.const 0) (i32.const 0)))))
      (if (call $eq (local.get $op) (local.get $opl) (i32.const 64) (i32.const 7))
        (then (return (call $answer (i32.const 0) (i32.const 80) (i32.const 8)))))
      (if (call $eq (local.get $op) (local.get $opl) (i32.const 56) (i32.const 4))
        (then
          ;; [bd_len][bd][ns_len][ns][op_len][op][payload...]
          (local.set $q (local.get $p))
          (local.set $bl (i32.load8_u (local.get $q)))
          (local.set $q (i32.add (local.get $q) (i32.const 1)))
          (local.set $nl (i32.load8_u (i32.add (local.get $q) (local.get $bl))))
          (local.set $ol (i32.load8_u (i32.add (i32.add (local.get $q) (local.get $bl))
                                               (i32.add (local.get $nl) (i32.const 1)))))
          (call $call
            (local.get $q) (local.get $bl)
            (i32.add (local.get $q) (i32.add (local.get $bl) (i32.const 1))) (local.get $nl)
            (i32.add (local.get $q) (i32.add (i32.add (local.get $bl) (local.get $nl)) (i32.const 2)))
            (local.get $ol)
            (i32.add (local.get $q) (i32.add (i32.add (local.get $bl) (local.get $nl))
                                             (i32.add (local.get $ol) (i32.const 2))))
            (i32.sub (i32.add (local.get $p) (local.get $pl))
                     (i32.add (local.get $q) (i32.add (i32.add (local.get $bl) (local.get $nl))
                                                      (i32.add (local.get $ol) (i32.const 2)))))
            (i32.const 1024))
          (return (call $answer (i32.load8_u (i32.const 1024))
                                (i32.load (i32.const 1028)) (i32.load (i32.const 1032))))))
      (if (call $eq (local.get $op) (local.get $opl) (i32.const 136) (i32.const 4))
        (then
          (block $full (loop $more
            (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
            (br $more)))
          (return (call $answer (i32.const 0) (i32.const 3072) (call $digits (memory.size))))))
      (call $answer (i32.const 1) (i32.const 112) (i32.const 17)))
    ;; n as decimal text at 3072: its length
    (func $digits (param $n i32) (result i32)
      (local $len i32) (local $i i32)
      (local.set $i (local.get $n))
      (loop $count
        (local.set $len (i32.add (local.get $len) (i32.const 1)))
        (local.set $i (i32.div_u (local.get $i) (i32.const 10)))
        (br_if $count (i32.ne (local.get $i) (i32.const 0))))
      (local.set $i (local.get $len))
      (loop $write
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (i32.store8 (i32.add (i32.const 3072) (local.get $i))
          (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
        (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
        (br_if $write (i32.ne (local.get $i) (i32.const 0))))
      (local.get $len))
  )
  (core instance $imports (export "log" (func $log)) (export "call" (func $call)))
  (core instance $mi (instantiate $m (with "env" (instance $memi)) (with "imports" (instance $imports))))
  (type $res (result (list u8) (error string)))
  (func $guest_call (param "operation" string) (param "payload" (list u8)) (result $res)
    (canon lift (core func $mi "call") (memory (core memory $memi "memory"))
      (realloc (core func $memi "realloc"))))
  (instance $guest (export "call" (func $guest_call)))
  (export "wascc:actor/guest" (instance $guest))
)
