;; responder.wat - a wasmCloud-style messaging component.
;;
;; Exports wasmcloud:messaging/handler@0.2.0 handle-message(msg): answers a
;; message that has a reply-to by publishing "re: " + its body there
;; (wasmcloud:messaging/consumer publish); a message without one is an error.
(component
  (import "wasmcloud:messaging/types@0.2.0" (instance $types
    (type $msg (record (field "subject" string) (field "body" (list u8))
                       (field "reply-to" (option string))))
    (export "broker-message" (type (eq $msg)))
  ))
  (alias export $types "broker-message" (type $message))
  (import "wasmcloud:messaging/consumer@0.2.0" (instance $consumer
    (export "broker-message" (type $m (eq $message)))
    (export "publish" (func (param "msg" $m) (result (result (error string)))))
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
  (core func $publish (canon lower (func $consumer "publish")
    (memory (core memory $memi "memory")) (realloc (core func $memi "realloc"))))
  (core module $m
    (import "env" "memory" (memory 1))
    (import "consumer" "publish" (func $publish (param i32 i32 i32 i32 i32 i32 i32 i32)))
    (data (i32.const 16) "re: ")
    (data (i32.const 32) "the message has no reply-to")
    ;; handle-message(subject ptr,len, body ptr,len, reply-to disc,ptr,len) -> result ptr
    (func (export "handle") (param $s i32) (param $sl i32) (param $b i32) (param $bl i32)
                            (param $has i32) (param $r i32) (param $rl i32) (result i32)
      (if (i32.eqz (local.get $has))
        (then
          (i32.store8 (i32.const 2048) (i32.const 1))
          (i32.store (i32.const 2052) (i32.const 32))
          (i32.store (i32.const 2056) (i32.const 27))
          (return (i32.const 2048))))
      ;; "re: " + body at 4096
      (memory.copy (i32.const 4096) (i32.const 16) (i32.const 4))
      (memory.copy (i32.const 4100) (local.get $b) (local.get $bl))
      (call $publish (local.get $r) (local.get $rl)
                     (i32.const 4096) (i32.add (local.get $bl) (i32.const 4))
                     (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1024))
      ;; pass the publish result on
      (i32.store8 (i32.const 2048) (i32.load8_u (i32.const 1024)))
      (i32.store (i32.const 2052) (i32.load (i32.const 1028)))
      (i32.store (i32.const 2056) (i32.load (i32.const 1032)))
      (i32.const 2048))
  )
  (core instance $imports (export "publish" (func $publish)))
  (core instance $mi (instantiate $m (with "env" (instance $memi)) (with "consumer" (instance $imports))))
  (type $res (result (error string)))
  (func $handle (param "msg" $message) (result $res)
    (canon lift (core func $mi "handle") (memory (core memory $memi "memory"))
      (realloc (core func $memi "realloc"))))
  (instance $handler
    (export "broker-message" (type $message))
    (export "handle-message" (func $handle)))
  (export "wasmcloud:messaging/handler@0.2.0" (instance $handler))
)
