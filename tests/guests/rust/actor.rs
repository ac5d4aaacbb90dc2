//! A waPC actor in Rust with no crates and no allocator: proof that the host
//! speaks waPC (CONTRACTS section 1), not only its own SDK's dialect.
//!
//! Built by tests/test_guest_rust.py with Debian's rustc and its wasm32 std:
//!
//!   rustc --edition 2021 --target wasm32-unknown-unknown --crate-type cdylib \
//!     -C panic=abort -C opt-level=s -C lto -o actor.wasm actor.rs
//!
//! Memory: every call works in one scratch region at the end of linear memory,
//! obtained with `memory.grow` and reused by the next call (nothing else in
//! this module grows memory, so the region always ends where memory ends).
//! Layout of a call: op | "rust-guest failed: " | payload | reply space.
//!
//! Operations: Echo, Fail, HostEcho, Log, Sum (see the test for the contract).

#![no_std]

use core::arch::wasm32;
use core::slice;

#[link(wasm_import_module = "wapc")]
extern "C" {
    fn __guest_request(op_ptr: *mut u8, ptr: *mut u8);
    fn __guest_response(ptr: *const u8, len: usize);
    fn __guest_error(ptr: *const u8, len: usize);
    fn __host_call(
        bd_ptr: *const u8,
        bd_len: usize,
        ns_ptr: *const u8,
        ns_len: usize,
        op_ptr: *const u8,
        op_len: usize,
        ptr: *const u8,
        len: usize,
    ) -> i32;
    fn __host_response_len() -> usize;
    fn __host_response(ptr: *mut u8);
    fn __host_error_len() -> usize;
    fn __host_error(ptr: *mut u8);
    fn __console_log(ptr: *const u8, len: usize);
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    wasm32::unreachable()
}

const PAGE: usize = 65536;
const FAIL_PREFIX: &[u8] = b"rust-guest failed: ";
const BAD_PAYLOAD: &[u8] = b"bad payload";
const OUT_OF_MEMORY: &[u8] = b"rust-guest: out of memory";

/// Start of the scratch region (0 until the first call).
static mut SCRATCH: usize = 0;

/// A pointer to at least `need` bytes of scratch memory, growing memory if
/// needed. Earlier contents of the region are kept.
fn scratch(need: usize) -> Option<*mut u8> {
    unsafe {
        if SCRATCH == 0 {
            SCRATCH = wasm32::memory_size(0) * PAGE;
        }
        let have = wasm32::memory_size(0) * PAGE - SCRATCH;
        if need > have {
            let pages = (need - have + PAGE - 1) / PAGE;
            if wasm32::memory_grow(0, pages) == usize::MAX {
                return None;
            }
        }
        Some(SCRATCH as *mut u8)
    }
}

fn respond(data: &[u8]) -> i32 {
    unsafe { __guest_response(data.as_ptr(), data.len()) };
    1
}

fn fail(message: &[u8]) -> i32 {
    unsafe { __guest_error(message.as_ptr(), message.len()) };
    0
}

#[no_mangle]
pub extern "C" fn __guest_call(op_len: i32, msg_len: i32) -> i32 {
    if op_len < 0 || msg_len < 0 {
        return fail(BAD_PAYLOAD);
    }
    let (op_len, msg_len) = (op_len as usize, msg_len as usize);
    let msg_at = op_len + FAIL_PREFIX.len();
    let reply_at = msg_at + msg_len;
    let base = match scratch(reply_at) {
        Some(base) => base,
        None => return fail(OUT_OF_MEMORY),
    };
    let (op, msg) = unsafe {
        __guest_request(base, base.add(msg_at));
        (
            slice::from_raw_parts(base, op_len),
            slice::from_raw_parts(base.add(msg_at), msg_len),
        )
    };
    match op {
        b"Echo" => respond(msg),
        b"Fail" => unsafe {
            let prefixed = base.add(op_len);
            core::ptr::copy_nonoverlapping(FAIL_PREFIX.as_ptr(), prefixed, FAIL_PREFIX.len());
            fail(slice::from_raw_parts(prefixed, FAIL_PREFIX.len() + msg_len))
        },
        b"HostEcho" => host_echo(msg, reply_at),
        b"Log" => {
            unsafe { __console_log(msg.as_ptr(), msg.len()) };
            respond(&[])
        }
        b"Sum" => match read_sum(msg) {
            Some(sum) => {
                let mut out = [0u8; 16];
                let n = write_sum(&mut out, sum);
                respond(&out[..n])
            }
            None => fail(BAD_PAYLOAD),
        },
        _ => {
            let mut text = [0u8; 64];
            let prefix = b"rust-guest: unknown operation ";
            let n = core::cmp::min(op.len(), text.len() - prefix.len());
            text[..prefix.len()].copy_from_slice(prefix);
            text[prefix.len()..prefix.len() + n].copy_from_slice(&op[..n]);
            fail(&text[..prefix.len() + n])
        }
    }
}

/// HostEcho: the payload to the `wascc:testing` provider's Echo on binding
/// `default`; its reply is our answer, its error our error.
fn host_echo(msg: &[u8], reply_at: usize) -> i32 {
    const BINDING: &[u8] = b"default";
    const NAMESPACE: &[u8] = b"wascc:testing";
    const OPERATION: &[u8] = b"Echo";
    let ok = unsafe {
        __host_call(
            BINDING.as_ptr(),
            BINDING.len(),
            NAMESPACE.as_ptr(),
            NAMESPACE.len(),
            OPERATION.as_ptr(),
            OPERATION.len(),
            msg.as_ptr(),
            msg.len(),
        )
    };
    let len = unsafe {
        if ok == 1 {
            __host_response_len()
        } else {
            __host_error_len()
        }
    };
    let base = match scratch(reply_at + len) {
        Some(base) => base,
        None => return fail(OUT_OF_MEMORY),
    };
    unsafe {
        let reply = base.add(reply_at);
        if ok == 1 {
            __host_response(reply);
            respond(slice::from_raw_parts(reply, len))
        } else {
            __host_error(reply);
            fail(slice::from_raw_parts(reply, len))
        }
    }
}

/// A bounds-checked msgpack reader over one buffer.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let bytes = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }

    fn be(&mut self, n: usize) -> Option<u64> {
        let mut v = 0u64;
        for &b in self.take(n)? {
            v = (v << 8) | b as u64;
        }
        Some(v)
    }

    fn map_len(&mut self) -> Option<usize> {
        match self.byte()? {
            b @ 0x80..=0x8f => Some((b & 0x0f) as usize),
            0xde => self.be(2).map(|n| n as usize),
            0xdf => self.be(4).map(|n| n as usize),
            _ => None,
        }
    }

    fn str(&mut self) -> Option<&'a [u8]> {
        let n = match self.byte()? {
            b @ 0xa0..=0xbf => (b & 0x1f) as usize,
            0xd9 => self.be(1)? as usize,
            0xda => self.be(2)? as usize,
            0xdb => self.be(4)? as usize,
            _ => return None,
        };
        self.take(n)
    }

    fn uint(&mut self) -> Option<u64> {
        match self.byte()? {
            b @ 0x00..=0x7f => Some(b as u64),
            0xcc => self.be(1),
            0xcd => self.be(2),
            0xce => self.be(4),
            0xcf => self.be(8),
            _ => None,
        }
    }

    /// Skip one scalar value (the value of a key we do not know); containers
    /// and extension types are not accepted.
    fn skip(&mut self) -> Option<()> {
        let n = match self.byte()? {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => 0,
            b @ 0xa0..=0xbf => (b & 0x1f) as usize,
            0xcc | 0xd0 => 1,
            0xcd | 0xd1 => 2,
            0xce | 0xd2 | 0xca => 4,
            0xcf | 0xd3 | 0xcb => 8,
            0xc4 | 0xd9 => self.be(1)? as usize,
            0xc5 | 0xda => self.be(2)? as usize,
            0xc6 | 0xdb => self.be(4)? as usize,
            _ => return None,
        };
        self.take(n).map(|_| ())
    }
}

/// `{"a": uint, "b": uint}` -> a + b; unknown scalar keys are ignored, bytes
/// after the map too (CONTRACTS 2). None for anything else.
fn read_sum(msg: &[u8]) -> Option<u64> {
    let mut r = Reader { buf: msg, pos: 0 };
    let (mut a, mut b) = (None, None);
    for _ in 0..r.map_len()? {
        match r.str()? {
            b"a" => a = Some(r.uint()?),
            b"b" => b = Some(r.uint()?),
            _ => r.skip()?,
        }
    }
    a?.checked_add(b?)
}

/// Writes `{"sum": n}` into `out`, returning its length.
fn write_sum(out: &mut [u8; 16], n: u64) -> usize {
    out[..5].copy_from_slice(b"\x81\xa3sum");
    let (tag, width): (Option<u8>, usize) = if n < 0x80 {
        (None, 1)
    } else if n <= 0xff {
        (Some(0xcc), 1)
    } else if n <= 0xffff {
        (Some(0xcd), 2)
    } else if n <= 0xffff_ffff {
        (Some(0xce), 4)
    } else {
        (Some(0xcf), 8)
    };
    let mut at = 5;
    if let Some(tag) = tag {
        out[at] = tag;
        at += 1;
    }
    let bytes = n.to_be_bytes();
    out[at..at + width].copy_from_slice(&bytes[8 - width..]);
    at + width
}
