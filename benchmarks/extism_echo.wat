;; An Extism plugin with the same echo logic as echo_actor.wat's "Echo".
;;
;; `echo` copies the call's input into a freshly allocated block of the
;; Extism kernel's memory and makes that block the output, the way the Extism
;; PDKs read input and set output: 8 bytes at a time through
;; input_load_u64/store_u64, then the tail byte by byte.
(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))

  (func (export "echo") (result i32)
    (local $len i64)
    (local $dst i64)
    (local $i i64)
    (local $words i64)
    (local.set $len (call $input_length))
    (local.set $dst (call $alloc (local.get $len)))
    (local.set $words (i64.and (local.get $len) (i64.const -8)))
    (block $done8
      (loop $copy8
        (br_if $done8 (i64.ge_u (local.get $i) (local.get $words)))
        (call $store_u64
          (i64.add (local.get $dst) (local.get $i))
          (call $input_load_u64 (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 8)))
        (br $copy8)))
    (block $done1
      (loop $copy1
        (br_if $done1 (i64.ge_u (local.get $i) (local.get $len)))
        (call $store_u8
          (i64.add (local.get $dst) (local.get $i))
          (call $input_load_u8 (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $copy1)))
    (call $output_set (local.get $dst) (local.get $len))
    (i32.const 0))
)
