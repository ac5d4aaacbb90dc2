"""cffi builder for ``wascc.engine._wascc_ffi``, the host's only compiled module.

It compiles ``native/host/wascc_host.c`` (the waPC host protocol over
wasmtime's C API) in cffi's API mode.  setup.py names it in ``cffi_modules``;
``python -m wascc._ffi_build`` builds it in place for development.
"""

from __future__ import annotations

import re
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent.parent
HOST = ROOT / "native" / "host"
INCLUDE = ROOT / "native" / "include"

CALLBACKS = """
extern "Python" int wh_py_host_call(void *handle, wh_instance *inst,
                                    const unsigned char *bd, size_t bd_len,
                                    const unsigned char *ns, size_t ns_len,
                                    const unsigned char *op, size_t op_len,
                                    const unsigned char *msg, size_t msg_len);
extern "Python" void wh_py_console_log(void *handle, const unsigned char *p, size_t n);
extern "Python" int wh_py_dispatch(void *handle, wh_reply *reply, const char *actor,
                                   const char *op, const unsigned char *msg, size_t msg_len);
extern "Python" void wh_py_pool_empty(void *owner);
extern "Python" void *wh_py_wasi_config(void *owner);
extern "Python" void wh_py_failed(void *router, wh_failure *f, wh_reply *words);
"""


def _cdef(header: Path) -> str:
    text = header.read_text()
    match = re.search(r"/\* cdef-begin \*/(.*)/\* cdef-end \*/", text, re.S)
    if match is None:
        raise RuntimeError(f"{header} has no cdef markers")
    return match.group(1)


ffibuilder = FFI()
# provider.h first: its structs are used by the host's declarations.  Taking
# the cdef from the header itself keeps cffi's view and the C ABI one thing;
# cffi also checks every field offset against the compiled header.
ffibuilder.cdef(_cdef(INCLUDE / "wascc" / "provider.h") + _cdef(HOST / "wascc_host.h") + CALLBACKS)
ffibuilder.set_source(
    "wascc.engine._wascc_ffi",
    '#include "wascc_host.c"\n',
    include_dirs=[str(HOST), str(INCLUDE)],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    libraries=["dl", "pthread"],
    depends=[
        str(HOST / "wascc_host.c"),
        str(HOST / "wascc_route.c"),
        str(HOST / "wascc_host.h"),
        str(INCLUDE / "wascc" / "provider.h"),
    ],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=str(ROOT / "build" / "cffi"), verbose=False)
