;; portable_provider.wat - a portable (WASI) capability provider for the tests.
;;
;; Every call's payload is the PortableCall envelope {actor, msg}.  For an
;; actor caller, msgpack puts the 56-character key at offset 9 of it.
;;   GetCapabilityDescriptor  answers @DESCRIPTOR@ (filled in by the test); with
;;                            $strict_descriptor set to 1 it first demands the
;;                            payload HealthRequest {placeholder: false}, as an
;;                            original portable provider does, and refuses any
;;                            other (an empty one) with rmp-serde's error
;;   HealthRequest            answers msgpack {"healthy": true, "message": ""}
;;   BindActor, RemoveActor   answer empty
;;   EchoEnvelope             answers the envelope itself
;;   Prestat                  answers one byte: WASI errno of fd_prestat_get(3)
;;                            (0 when a directory was granted, 8 = EBADF when not)
;;   EnvCount                 answers one byte: the number of environment variables
;;   Poke                     __host_call(actor, "Echo", "poked") back to the caller
(module
  (import "wapc" "__guest_request" (func $guest_request (param i32 i32)))
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (import "wapc" "__guest_error" (func $guest_error (param i32 i32)))
  (import "wapc" "__host_call"
    (func $host_call (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wapc" "__host_response_len" (func $host_response_len (result i32)))
  (import "wapc" "__host_response" (func $host_response (param i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get"
    (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get"
    (func $environ_sizes_get (param i32 i32) (result i32)))
  (memory (export "memory") 2)

  (data (i32.const 16) "GetCapabilityDescriptor")
  (data (i32.const 48) "HealthRequest")
  (data (i32.const 64) "BindActor")
  (data (i32.const 80) "RemoveActor")
  (data (i32.const 96) "EchoEnvelope")
  (data (i32.const 112) "Prestat")
  (data (i32.const 128) "EnvCount")
  (data (i32.const 144) "Poke")
  (data (i32.const 152) "Echo")
  (data (i32.const 160) "poked")
  (data (i32.const 176) "\82\a7healthy\c3\a7message\a0")
  (data (i32.const 208) "unknown operation")
  (data (i32.const 4096) "@DESCRIPTOR@")
  ;; PortableCall's msg field as it must arrive: bin 14, HealthRequest {placeholder: false}
  (data (i32.const 272) "\c4\0e\81\abplaceholder\c2")
  (data (i32.const 288) "Failed to de-serialize: IO error while reading marker: failed to fill whole buffer")
  (global $strict_descriptor i32 (i32.const 0))

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

  (func (export "__guest_call") (param $op_len i32) (param $msg_len i32) (result i32)
    (local $op i32) (local $msg i32) (local $n i32)
    (local.set $op (i32.const 8192))
    (local.set $msg (i32.add (local.get $op) (local.get $op_len)))
    (if (i32.gt_u (i32.add (local.get $msg) (local.get $msg_len)) (i32.const 100000))
      (then unreachable))
    (call $guest_request (local.get $op) (local.get $msg))
    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 16) (i32.const 23))
      (then
        ;; the envelope for "system" puts msg's bin header at offset 18
        (if (i32.and (global.get $strict_descriptor)
                     (i32.eqz (call $eq (i32.add (local.get $msg) (i32.const 18))
                                        (i32.sub (local.get $msg_len) (i32.const 18))
                                        (i32.const 272) (i32.const 16))))
          (then (call $guest_error (i32.const 288) (i32.const 82)) (return (i32.const 0))))
        (call $guest_response (i32.const 4096) (i32.const @DESCRIPTOR_LEN@))
            (return (i32.const 1))))
    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 48) (i32.const 13))
      (then (call $guest_response (i32.const 176) (i32.const 19)) (return (i32.const 1))))
    (if (i32.or (call $eq (local.get $op) (local.get $op_len) (i32.const 64) (i32.const 9))
                (call $eq (local.get $op) (local.get $op_len) (i32.const 80) (i32.const 11)))
      (then (call $guest_response (i32.const 0) (i32.const 0)) (return (i32.const 1))))
    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 96) (i32.const 12))
      (then (call $guest_response (local.get $msg) (local.get $msg_len))
            (return (i32.const 1))))
    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 112) (i32.const 7))
      (then
        (i32.store8 (i32.const 240) (call $fd_prestat_get (i32.const 3) (i32.const 248)))
        (call $guest_response (i32.const 240) (i32.const 1))
        (return (i32.const 1))))
    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 128) (i32.const 8))
      (then
        (drop (call $environ_sizes_get (i32.const 256) (i32.const 260)))
        (call $guest_response (i32.const 256) (i32.const 1))
        (return (i32.const 1))))
    (if (call $eq (local.get $op) (local.get $op_len) (i32.const 144) (i32.const 4))
      (then
        (if (i32.eqz (call $host_call (i32.const 0) (i32.const 0)
                        (i32.add (local.get $msg) (i32.const 9)) (i32.const 56)
                        (i32.const 152) (i32.const 4) (i32.const 160) (i32.const 5)))
          (then (return (i32.const 0))))
        (local.set $n (call $host_response_len))
        (call $host_response (i32.const 16384))
        (call $guest_response (i32.const 16384) (local.get $n))
        (return (i32.const 1))))
    (call $guest_error (i32.const 208) (i32.const 17))
    (i32.const 0))
)
