//! `wascc:rust_echo` - a minimal wascc native capability provider in Rust.
//!
//! Written against `native/include/wascc/provider.h` (ABI version 1) and the
//! wire formats of CONTRACTS sections 2 and 3, and nothing else: no crates,
//! std only.  It proves that header is the whole contract.
//!
//! Operations (actor -> provider):
//!   `Echo`     reply = the payload
//!   `Reverse`  reply = the payload, bytes reversed
//!   `Ping`     dispatches `Pong` (same payload) to the calling actor from a
//!              thread this provider spawns, and replies with the actor's reply
//!              once that dispatch returns; the caller must be bound
//!   `Panic`    panics inside the provider on purpose; the guard on every
//!              exported function turns it into a WASCC_ERROR reply
//! plus the core operations of provider.h, accepted from "system" only.
//!
//! No panic crosses into C: every `extern "C"` function runs its body inside
//! `catch_unwind` (the crate builds with `panic = "unwind"` so the guard works).

#![allow(non_camel_case_types)]

use std::alloc::{alloc, dealloc, Layout};
use std::collections::HashSet;
use std::ffi::{c_void, CStr, CString};
use std::os::raw::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread;

// ---- provider.h, ABI version 1 ---------------------------------------------

pub const WASCC_PROVIDER_ABI_VERSION: u32 = 1;
pub const WASCC_OK: i32 = 0;
pub const WASCC_ERROR: i32 = 1;

/// `int32_t (*)(void *, const char *actor, const char *op, const uint8_t *msg,
/// size_t msg_len, uint8_t **out, size_t *out_len)`: handle_call and dispatch.
pub type CallFn = unsafe extern "C" fn(
    *mut c_void,
    *const c_char,
    *const c_char,
    *const u8,
    usize,
    *mut *mut u8,
    *mut usize,
) -> i32;
pub type FreeFn = unsafe extern "C" fn(*mut c_void, *mut u8);
pub type ConfigureFn = unsafe extern "C" fn(*mut c_void, *const wascc_dispatcher) -> i32;
pub type StateFn = unsafe extern "C" fn(*mut c_void);

/// Handed by the host to configure_dispatch; owned by the host.  Function
/// pointers are `Option` (same ABI as a nullable C function pointer) so a
/// NULL from the host is seen, never called.
#[repr(C)]
pub struct wascc_dispatcher {
    pub abi_version: u32,
    pub host_data: *mut c_void,
    pub dispatch: Option<CallFn>,
    pub free_buffer: Option<FreeFn>,
}

/// Returned by __capability_provider_create; owned by the provider.
#[repr(C)]
pub struct wascc_provider {
    pub abi_version: u32,
    pub state: *mut c_void,
    pub configure_dispatch: Option<ConfigureFn>,
    pub handle_call: Option<CallFn>,
    pub free_buffer: Option<FreeFn>,
    pub stop: Option<StateFn>,
    pub destroy: Option<StateFn>,
}

// The layouts C sees: a u32, then pointers at pointer alignment (checked at
// compile time here; field offsets are checked by the unit tests).
const _: () = {
    use std::mem::{align_of, size_of};
    const P: usize = size_of::<usize>();
    assert!(size_of::<Option<CallFn>>() == P);
    assert!(size_of::<wascc_dispatcher>() == 4 * P);
    assert!(align_of::<wascc_dispatcher>() == P);
    assert!(size_of::<wascc_provider>() == 7 * P);
    assert!(align_of::<wascc_provider>() == P);
};

// ---- the provider ------------------------------------------------------------

const CAPABILITY_ID: &str = "wascc:rust_echo";
const SYSTEM_ACTOR: &str = "system";
const OP_BIND: &str = "BindActor";
const OP_REMOVE: &str = "RemoveActor";
const OP_HEALTH: &str = "HealthRequest";
const OP_DESCRIPTOR: &str = "GetCapabilityDescriptor";
// SAFETY: one NUL, at the end.
const PONG: &CStr = unsafe { CStr::from_bytes_with_nul_unchecked(b"Pong\0") };

/// (name, direction index: 0 to_actor / 1 to_provider / 2 both, doctext)
const OPERATIONS: &[(&str, u64, &str)] = &[
    ("Echo", 1, "Replies with the payload."),
    ("Reverse", 1, "Replies with the payload, bytes reversed."),
    (
        "Ping",
        1,
        "Dispatches Pong with the payload to the calling actor from a provider thread \
         and replies with the actor's reply.",
    ),
    (
        "Pong",
        0,
        "Sent to the actor that called Ping; its reply becomes Ping's reply.",
    ),
    (
        "Panic",
        1,
        "Panics inside the provider; the FFI guard turns it into an error.",
    ),
];

/// The host's dispatcher pointer (copied, as provider.h asks, not the struct).
#[derive(Clone, Copy)]
struct DispatcherRef(*const wascc_dispatcher);
// The dispatcher may be used from any provider thread (provider.h section 4).
unsafe impl Send for DispatcherRef {}
unsafe impl Sync for DispatcherRef {}

#[derive(Default)]
struct Inflight {
    dispatches: usize,
    stopped: bool,
}

#[derive(Default)]
struct State {
    dispatcher: Mutex<Option<DispatcherRef>>,
    bound: Mutex<HashSet<String>>,
    inflight: Mutex<Inflight>,
    idle: Condvar,
}

/// One provider: the struct the host sees, and its state.  `state` in the
/// struct points at the whole Instance, so destroy(state) frees both.
#[repr(C)]
struct Instance {
    vtable: wascc_provider,
    state: State,
}

/// A lock that survives a panic elsewhere (the data stays consistent: every
/// critical section here is a single insert, remove or assignment).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Holds one in-flight dispatch; stop waits until none is left.
struct DispatchTicket<'a>(&'a State);

impl Drop for DispatchTicket<'_> {
    fn drop(&mut self) {
        let mut inflight = lock(&self.0.inflight);
        inflight.dispatches -= 1;
        if inflight.dispatches == 0 {
            self.0.idle.notify_all();
        }
    }
}

impl State {
    fn handle(&self, actor: &str, op: &str, msg: &[u8]) -> Result<Vec<u8>, String> {
        match op {
            OP_DESCRIPTOR | OP_BIND | OP_REMOVE | OP_HEALTH if actor != SYSTEM_ACTOR => Err(
                format!("{op} is reserved for the host; actor {actor} may not send it"),
            ),
            OP_DESCRIPTOR => Ok(descriptor()),
            OP_BIND => {
                let module = configuration_module(msg).map_err(|e| format!("{OP_BIND}: {e}"))?;
                lock(&self.bound).insert(module);
                Ok(Vec::new())
            }
            OP_REMOVE => {
                let module = configuration_module(msg).map_err(|e| format!("{OP_REMOVE}: {e}"))?;
                lock(&self.bound).remove(&module);
                Ok(Vec::new())
            }
            OP_HEALTH => {
                let mut w = Writer::default();
                w.map(2);
                w.str("healthy");
                w.bool(true);
                w.str("message");
                w.str("");
                Ok(w.0)
            }
            "Echo" => Ok(msg.to_vec()),
            "Reverse" => Ok(msg.iter().rev().copied().collect()),
            "Ping" => self.ping(actor, msg),
            "Panic" => panic!("Panic was asked for (payload of {} bytes)", msg.len()),
            _ => Err(format!("{CAPABILITY_ID} does not support operation {op:?}")),
        }
    }

    /// Dispatch Pong to `actor` from a new thread; the actor's reply is ours.
    fn ping(&self, actor: &str, msg: &[u8]) -> Result<Vec<u8>, String> {
        if !lock(&self.bound).contains(actor) {
            return Err(format!(
                "Ping: actor {actor} is not bound to {CAPABILITY_ID}, so it cannot be sent Pong"
            ));
        }
        let dispatcher = (*lock(&self.dispatcher))
            .ok_or_else(|| "Ping: the host has not configured a dispatcher".to_string())?;
        let _ticket = {
            let mut inflight = lock(&self.inflight);
            if inflight.stopped {
                return Err("Ping: the provider is stopped".to_string());
            }
            inflight.dispatches += 1;
            DispatchTicket(self)
        };
        let actor_c = CString::new(actor).map_err(|_| "Ping: actor has a NUL byte".to_string())?;
        // A scoped thread: it may borrow `msg`, which is valid for this whole
        // call because we join before returning.
        thread::scope(|scope| {
            let worker = thread::Builder::new()
                .name("rust_echo-ping".into())
                .spawn_scoped(scope, || dispatch(dispatcher, &actor_c, PONG, msg))
                .map_err(|e| format!("Ping: cannot spawn the dispatch thread: {e}"))?;
            match worker.join() {
                Ok(Ok(reply)) => Ok(reply),
                Ok(Err(e)) => Err(format!("Ping: Pong to {actor} failed: {e}")),
                Err(payload) => Err(format!(
                    "Ping: the dispatch thread panicked: {}",
                    panic_text(payload.as_ref())
                )),
            }
        })
    }

    fn configure(&self, dispatcher: *const wascc_dispatcher) -> Result<(), String> {
        if dispatcher.is_null() {
            return Err("NULL dispatcher".into());
        }
        // SAFETY: the host's dispatcher is valid until stop returns (provider.h 4).
        let d = unsafe { &*dispatcher };
        if d.abi_version != WASCC_PROVIDER_ABI_VERSION {
            return Err(format!("dispatcher ABI version {} is not 1", d.abi_version));
        }
        if d.dispatch.is_none() || d.free_buffer.is_none() {
            return Err("dispatcher has a NULL function pointer".into());
        }
        *lock(&self.dispatcher) = Some(DispatcherRef(dispatcher));
        Ok(())
    }

    /// No dispatch starts after this; returns once none is in flight.
    fn stop(&self) {
        let mut inflight = lock(&self.inflight);
        inflight.stopped = true;
        while inflight.dispatches > 0 {
            inflight = self.idle.wait(inflight).unwrap_or_else(|p| p.into_inner());
        }
        drop(inflight);
        *lock(&self.dispatcher) = None;
        lock(&self.bound).clear();
    }
}

/// One call through the host's dispatcher; its buffer is released with the
/// dispatcher's free_buffer, whatever the status.
fn dispatch(d: DispatcherRef, actor: &CStr, op: &CStr, msg: &[u8]) -> Result<Vec<u8>, String> {
    // SAFETY: valid until stop returns, and stop waits for this dispatch.
    let disp = unsafe { &*d.0 };
    let (call, free) = match (disp.dispatch, disp.free_buffer) {
        (Some(call), Some(free)) => (call, free),
        _ => return Err("dispatcher has a NULL function pointer".into()),
    };
    let mut out: *mut u8 = std::ptr::null_mut();
    let mut out_len: usize = 0;
    let msg_ptr = if msg.is_empty() {
        std::ptr::null()
    } else {
        msg.as_ptr()
    };
    // SAFETY: arguments as provider.h section 4 describes them.
    let status = unsafe {
        call(
            disp.host_data,
            actor.as_ptr(),
            op.as_ptr(),
            msg_ptr,
            msg.len(),
            &mut out,
            &mut out_len,
        )
    };
    let data = if out.is_null() || out_len == 0 {
        Vec::new()
    } else {
        // SAFETY: the host wrote out_len bytes at out.
        unsafe { std::slice::from_raw_parts(out, out_len) }.to_vec()
    };
    if !out.is_null() {
        // SAFETY: a buffer the host allocated, released exactly once.
        unsafe { free(disp.host_data, out) };
    }
    if status == WASCC_OK {
        Ok(data)
    } else {
        Err(String::from_utf8_lossy(&data).into_owned())
    }
}

fn descriptor() -> Vec<u8> {
    let mut w = Writer::default();
    w.map(6);
    w.str("id");
    w.str(CAPABILITY_ID);
    w.str("name");
    w.str("wascc Rust echo provider");
    w.str("version");
    w.str(env!("CARGO_PKG_VERSION"));
    w.str("revision");
    w.uint(1);
    w.str("long_description");
    w.str(
        "A native provider in Rust with no crates, written against wascc/provider.h alone: \
         echoes, reverses, and pings the caller back from a thread of its own.",
    );
    w.str("supported_operations");
    w.array(OPERATIONS.len());
    for (name, direction, doctext) in OPERATIONS {
        w.map(3);
        w.str("name");
        w.str(name);
        w.str("direction");
        w.map(1);
        w.uint(*direction);
        w.nil();
        w.str("doctext");
        w.str(doctext);
    }
    w.0
}

/// The `module` of a CapabilityConfiguration `{module: str, values: map}`.
fn configuration_module(msg: &[u8]) -> Result<String, String> {
    let mut r = Reader { buf: msg, pos: 0 };
    let entries = r
        .map_len()
        .map_err(|e| format!("CapabilityConfiguration is not a msgpack map: {e}"))?;
    let mut module = None;
    for _ in 0..entries {
        let key = if r.peek_is_str_or_bin()? {
            Some(r.str_or_bin()?)
        } else {
            r.skip(0)?;
            None
        };
        if key == Some(b"module".as_slice()) {
            let value = r.str_or_bin().map_err(|e| format!("module: {e}"))?;
            let text = std::str::from_utf8(value).map_err(|_| "module is not UTF-8".to_string())?;
            module = Some(text.to_string());
        } else {
            r.skip(0)?; // unknown keys and `values` are ignored
        }
    }
    // Trailing bytes after the first value are ignored (CONTRACTS section 2).
    match module {
        Some(m) if !m.is_empty() => Ok(m),
        Some(_) => Err("module is empty".into()),
        None => Err("CapabilityConfiguration has no module".into()),
    }
}

// ---- msgpack: just what this provider needs ------------------------------------

const MAX_DEPTH: u32 = 64;

/// A bounds-checked msgpack reader over one buffer.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| format!("truncated msgpack: {n} bytes needed at offset {}", self.pos))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    /// A big-endian unsigned integer of n (1, 2, 4 or 8) bytes.
    fn be(&mut self, n: usize) -> Result<u64, String> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn len(&mut self, n: usize) -> Result<usize, String> {
        usize::try_from(self.be(n)?).map_err(|_| "msgpack length too large".to_string())
    }

    fn map_len(&mut self) -> Result<usize, String> {
        let at = self.pos;
        match self.byte()? {
            b @ 0x80..=0x8f => Ok(usize::from(b & 0x0f)),
            0xde => self.len(2),
            0xdf => self.len(4),
            b => Err(format!(
                "expected a map at offset {at}, found byte 0x{b:02x}"
            )),
        }
    }

    fn peek_is_str_or_bin(&self) -> Result<bool, String> {
        match self.buf.get(self.pos) {
            Some(0xa0..=0xbf | 0xd9..=0xdb | 0xc4..=0xc6) => Ok(true),
            Some(_) => Ok(false),
            None => Err(format!("truncated msgpack at offset {}", self.pos)),
        }
    }

    /// A str or a bin (CONTRACTS: either is accepted for text and bytes).
    fn str_or_bin(&mut self) -> Result<&'a [u8], String> {
        let at = self.pos;
        let n = match self.byte()? {
            b @ 0xa0..=0xbf => usize::from(b & 0x1f),
            0xd9 | 0xc4 => self.len(1)?,
            0xda | 0xc5 => self.len(2)?,
            0xdb | 0xc6 => self.len(4)?,
            b => {
                return Err(format!(
                    "expected a string at offset {at}, found byte 0x{b:02x}"
                ))
            }
        };
        self.take(n)
    }

    /// Skip one value of any type, nested at most MAX_DEPTH deep.
    fn skip(&mut self, depth: u32) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("msgpack nested deeper than {MAX_DEPTH}"));
        }
        let at = self.pos;
        let (skip, items) = match self.byte()? {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 | 0xca => (4, 0),
            0xcf | 0xd3 | 0xcb => (8, 0),
            b @ 0xa0..=0xbf => (usize::from(b & 0x1f), 0),
            0xd9 | 0xc4 => (self.len(1)?, 0),
            0xda | 0xc5 => (self.len(2)?, 0),
            0xdb | 0xc6 => (self.len(4)?, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xc7 => (self.len(1)?.saturating_add(1), 0),
            0xc8 => (self.len(2)?.saturating_add(1), 0),
            0xc9 => (self.len(4)?.saturating_add(1), 0),
            b @ 0x90..=0x9f => (0, usize::from(b & 0x0f)),
            0xdc => (0, self.len(2)?),
            0xdd => (0, self.len(4)?),
            b @ 0x80..=0x8f => (0, usize::from(b & 0x0f) * 2),
            0xde => (0, self.len(2)? * 2),
            0xdf => (0, self.len(4)?.saturating_mul(2)),
            b => return Err(format!("invalid msgpack byte 0x{b:02x} at offset {at}")),
        };
        self.take(skip)?;
        // Each item needs at least one byte, so a huge declared count fails
        // on the bounds check long before it costs anything.
        for _ in 0..items {
            self.skip(depth + 1)?;
        }
        Ok(())
    }
}

/// A msgpack writer for the replies.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn header(&mut self, n: usize, fix: u8, fix_max: usize, m16: u8, m32: u8) {
        if n <= fix_max {
            self.0.push(fix | n as u8);
        } else if n <= 0xffff {
            self.0.push(m16);
            self.0.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.0.push(m32);
            self.0.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }

    fn map(&mut self, n: usize) {
        self.header(n, 0x80, 15, 0xde, 0xdf);
    }

    fn array(&mut self, n: usize) {
        self.header(n, 0x90, 15, 0xdc, 0xdd);
    }

    fn str(&mut self, s: &str) {
        let n = s.len();
        if n <= 31 {
            self.0.push(0xa0 | n as u8);
        } else if n <= 0xff {
            self.0.extend_from_slice(&[0xd9, n as u8]);
        } else {
            self.header(n, 0, 0, 0xda, 0xdb);
        }
        self.0.extend_from_slice(s.as_bytes());
    }

    fn uint(&mut self, v: u64) {
        if v <= 0x7f {
            self.0.push(v as u8);
        } else if v <= 0xff {
            self.0.extend_from_slice(&[0xcc, v as u8]);
        } else if v <= 0xffff {
            self.0.push(0xcd);
            self.0.extend_from_slice(&(v as u16).to_be_bytes());
        } else if v <= 0xffff_ffff {
            self.0.push(0xce);
            self.0.extend_from_slice(&(v as u32).to_be_bytes());
        } else {
            self.0.push(0xcf);
            self.0.extend_from_slice(&v.to_be_bytes());
        }
    }

    fn bool(&mut self, b: bool) {
        self.0.push(if b { 0xc3 } else { 0xc2 });
    }

    fn nil(&mut self) {
        self.0.push(0xc0);
    }
}

// ---- reply buffers -------------------------------------------------------------
//
// free_buffer gets only the pointer, so each buffer carries its own size in a
// header just before the bytes the host sees.

const HEADER: usize = 16;

fn buffer_layout(len: usize) -> Option<Layout> {
    Layout::from_size_align(len.checked_add(HEADER)?, HEADER).ok()
}

/// A provider-owned copy of `data` for *out; NULL if it cannot be allocated.
fn new_buffer(data: &[u8]) -> *mut u8 {
    let layout = match buffer_layout(data.len()) {
        Some(layout) => layout,
        None => return std::ptr::null_mut(),
    };
    // SAFETY: layout has a non-zero size; the header holds the length.
    unsafe {
        let base = alloc(layout);
        if base.is_null() {
            return base;
        }
        (base as *mut usize).write(data.len());
        let bytes = base.add(HEADER);
        std::ptr::copy_nonoverlapping(data.as_ptr(), bytes, data.len());
        bytes
    }
}

/// SAFETY: `bytes` came from `new_buffer` and is released once.
unsafe fn free_buffer_bytes(bytes: *mut u8) {
    let base = bytes.sub(HEADER);
    let len = (base as *const usize).read();
    if let Some(layout) = buffer_layout(len) {
        dealloc(base, layout);
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with no message".to_string()
    }
}

// ---- the exported C functions ----------------------------------------------------
//
// Each body runs inside catch_unwind: a panic becomes an error, never an
// unwind into the host.

unsafe fn state<'a>(state: *mut c_void) -> Option<&'a State> {
    (state as *const Instance).as_ref().map(|i| &i.state)
}

unsafe fn text<'a>(p: *const c_char, what: &str) -> Result<&'a str, String> {
    if p.is_null() {
        return Err(format!("NULL {what}"));
    }
    CStr::from_ptr(p)
        .to_str()
        .map_err(|_| format!("{what} is not UTF-8"))
}

unsafe extern "C" fn rust_echo_configure(s: *mut c_void, d: *const wascc_dispatcher) -> i32 {
    let result = catch_unwind(AssertUnwindSafe(|| match state(s) {
        Some(st) => st.configure(d).is_ok(),
        None => false,
    }));
    match result {
        Ok(true) => WASCC_OK,
        _ => WASCC_ERROR,
    }
}

unsafe extern "C" fn rust_echo_handle_call(
    s: *mut c_void,
    actor: *const c_char,
    op: *const c_char,
    msg: *const u8,
    msg_len: usize,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> i32 {
    if out.is_null() || out_len.is_null() {
        return WASCC_ERROR;
    }
    *out = std::ptr::null_mut();
    *out_len = 0;
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<Vec<u8>, String> {
        let st = state(s).ok_or("NULL provider state")?;
        let actor = text(actor, "actor")?;
        let op = text(op, "operation")?;
        let msg: &[u8] = match (msg.is_null(), msg_len) {
            (_, 0) => &[],
            (true, _) => return Err(format!("NULL payload of {msg_len} bytes")),
            (false, n) => std::slice::from_raw_parts(msg, n),
        };
        st.handle(actor, op, msg)
    }));
    let (status, data) = match result {
        Ok(Ok(reply)) => (WASCC_OK, reply),
        Ok(Err(e)) => (WASCC_ERROR, e.into_bytes()),
        Err(payload) => (
            WASCC_ERROR,
            format!("{CAPABILITY_ID} panicked: {}", panic_text(payload.as_ref())).into_bytes(),
        ),
    };
    if data.is_empty() {
        return status;
    }
    let buf = new_buffer(&data);
    if buf.is_null() {
        return WASCC_ERROR; // out of memory: an error with no message
    }
    *out = buf;
    *out_len = data.len();
    status
}

unsafe extern "C" fn rust_echo_free_buffer(_s: *mut c_void, buf: *mut u8) {
    if !buf.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| free_buffer_bytes(buf)));
    }
}

unsafe extern "C" fn rust_echo_stop(s: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if let Some(st) = state(s) {
            st.stop();
        }
    }));
}

unsafe extern "C" fn rust_echo_destroy(s: *mut c_void) {
    if !s.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(s as *mut Instance))));
    }
}

/// The entry point: a fresh provider (no state shared between two calls).
#[no_mangle]
pub extern "C" fn __capability_provider_create() -> *mut wascc_provider {
    catch_unwind(|| {
        let instance = Box::into_raw(Box::new(Instance {
            vtable: wascc_provider {
                abi_version: WASCC_PROVIDER_ABI_VERSION,
                state: std::ptr::null_mut(),
                configure_dispatch: Some(rust_echo_configure),
                handle_call: Some(rust_echo_handle_call),
                free_buffer: Some(rust_echo_free_buffer),
                stop: Some(rust_echo_stop),
                destroy: Some(rust_echo_destroy),
            },
            state: State::default(),
        }));
        // SAFETY: just allocated; the host owns nothing until we return.
        unsafe {
            (*instance).vtable.state = instance as *mut c_void;
            std::ptr::addr_of_mut!((*instance).vtable)
        }
    })
    .unwrap_or(std::ptr::null_mut())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::MaybeUninit;
    use std::ptr::addr_of;

    const P: usize = std::mem::size_of::<usize>();

    #[test]
    fn struct_layouts_match_provider_h() {
        let d = MaybeUninit::<wascc_dispatcher>::uninit();
        let base = d.as_ptr() as usize;
        // SAFETY: addresses only, nothing is read.
        let at = unsafe {
            [
                addr_of!((*d.as_ptr()).abi_version) as usize,
                addr_of!((*d.as_ptr()).host_data) as usize,
                addr_of!((*d.as_ptr()).dispatch) as usize,
                addr_of!((*d.as_ptr()).free_buffer) as usize,
            ]
        };
        assert_eq!(at.map(|a| a - base), [0, P, 2 * P, 3 * P]);
        let p = MaybeUninit::<wascc_provider>::uninit();
        let base = p.as_ptr() as usize;
        // SAFETY: addresses only, nothing is read.
        let at = unsafe {
            [
                addr_of!((*p.as_ptr()).abi_version) as usize,
                addr_of!((*p.as_ptr()).state) as usize,
                addr_of!((*p.as_ptr()).configure_dispatch) as usize,
                addr_of!((*p.as_ptr()).handle_call) as usize,
                addr_of!((*p.as_ptr()).free_buffer) as usize,
                addr_of!((*p.as_ptr()).stop) as usize,
                addr_of!((*p.as_ptr()).destroy) as usize,
            ]
        };
        assert_eq!(
            at.map(|a| a - base),
            [0, P, 2 * P, 3 * P, 4 * P, 5 * P, 6 * P]
        );
    }

    #[test]
    fn writer_and_reader_agree_on_lengths() {
        for n in [0usize, 31, 32, 255, 256, 65535, 65536] {
            let text = "x".repeat(n);
            let mut w = Writer::default();
            w.map(1);
            w.str("module");
            w.str(&text);
            assert_eq!(
                configuration_module(&w.0).ok(),
                (n > 0).then(|| text.clone())
            );
        }
    }

    #[test]
    fn every_truncation_of_a_configuration_is_an_error() {
        let mut w = Writer::default();
        w.map(2);
        w.str("values");
        w.map(1);
        w.str("k");
        w.str("v");
        w.str("module");
        w.str("Mactor");
        assert_eq!(configuration_module(&w.0).unwrap(), "Mactor");
        for n in 0..w.0.len() {
            assert!(
                configuration_module(&w.0[..n]).is_err(),
                "prefix of {n} bytes"
            );
        }
    }

    #[test]
    fn buffers_carry_their_length() {
        for data in [&b"a"[..], &[7u8; 1000][..]] {
            let p = new_buffer(data);
            // SAFETY: a buffer from new_buffer, read then freed once.
            unsafe {
                assert_eq!(std::slice::from_raw_parts(p, data.len()), data);
                free_buffer_bytes(p);
            }
        }
    }
}
