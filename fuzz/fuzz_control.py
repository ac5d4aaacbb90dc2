"""The control protocol: one request line through the server's line handler.

Each case is one line handed to :func:`wascc.standalone.control.handle_line` with the
daemon's real handler table over a small real Host (the test actor, signed,
and the ``wascc:extras`` provider), made once in ``setup``.  The answer must
be one JSON object line with ``ok`` (and ``error`` when it is false); a
handler that fails with anything but a WasccError is a finding (the server
would answer, but only after logging a traceback).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import wasmtime

from wascc.errors import ControlError, WasccError
from wascc.host import Host
from wascc.providers.extras import ExtrasProvider
from wascc.standalone.control import handle_line, handlers
from wascc.standalone.reconciler import Reconciler
from wascc.wire.claims import sign_module
from wascc.wire.keys import KeyPair, KeyType

from fuzz.engine import Target

_ROOT = Path(__file__).resolve().parent.parent
_ACCOUNT = KeyPair.generate(KeyType.ACCOUNT)
_MODULE = KeyPair.generate(KeyType.MODULE)
_CAP = "wascc:extras"


class _State:
    host: Host | None = None
    handlers: dict[str, Any] = {}
    escaped: list[BaseException] = []
    # known before setup, so the seeds can name it
    actor_path = str(Path(tempfile.gettempdir()) / f"wascc-fuzz-control-{os.getpid()}.wasm")


def _watched(name: str, handler: Any) -> Any:
    """The handler, recording any exception that is not a WasccError."""

    def run(message: dict[str, Any]) -> dict[str, Any]:
        try:
            result: dict[str, Any] = handler(message)
            return result
        except WasccError:
            raise
        except BaseException as exc:
            _State.escaped.append(exc)
            raise

    return run


def setup() -> None:
    wat = (_ROOT / "tests" / "actors" / "testactor.wat").read_text()
    signed = sign_module(
        wasmtime.wat2wasm(wat), issuer=_ACCOUNT, subject=_MODULE, name="fuzz", caps=[_CAP]
    )
    path = Path(_State.actor_path)
    path.write_bytes(signed)
    host = Host(trusted_issuers=[_ACCOUNT.public_key], health_interval=0, load_entry_points=False)
    if not any(p.capability_id == _CAP for p in host.providers()):
        host.add_provider(ExtrasProvider())
    host.add_actor(path)
    _State.host = host
    served = handlers(host, Reconciler(host), dict)
    _State.handlers = {k: _watched(k, v) for k, v in served.items()}


def teardown() -> None:
    if _State.host is not None:
        _State.host.stop()
        _State.host = None
    Path(_State.actor_path).unlink(missing_ok=True)


def run(data: bytes) -> None:
    if _State.host is None:
        setup()
    _State.escaped.clear()
    answer = handle_line(_State.handlers, data)
    if not answer.endswith(b"\n") or answer.count(b"\n") != 1:
        raise AssertionError(f"the answer is not one line: {answer[:200]!r}")
    reply = json.loads(answer)
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise AssertionError(f"the answer has no ok: {reply!r}")
    if not reply["ok"] and not isinstance(reply.get("error"), str):
        raise AssertionError(f"a refusal without an error text: {reply!r}")
    if _State.escaped:
        raise _State.escaped[0]
    if not reply["ok"]:
        raise ControlError(reply["error"])  # a clean refusal: counted as such


def _line(obj: object) -> bytes:
    return json.dumps(obj).encode()


def _seeds() -> list[bytes]:
    actor = _MODULE.public_key
    path = _State.actor_path
    return [
        _line({"command": "inventory"}),
        _line({"command": "call", "actor": actor, "operation": "Version"}),
        _line({"command": "call", "actor": actor, "operation": "Echo", "payload_b64": "aGk="}),
        _line({"command": "bind", "actor": actor, "capability": _CAP, "values": {"K": "V"}}),
        _line({"command": "unbind", "actor": actor, "capability": _CAP, "binding": "default"}),
        _line({"command": "add-provider", "path": _CAP, "binding": "second"}),
        _line({"command": "remove-provider", "capability": _CAP, "binding": "second"}),
        _line({"command": "start-actor", "path": path}),
        _line({"command": "replace-actor", "actor": actor, "path": path}),
        _line({"command": "stop-actor", "actor": actor}),
    ]


def _value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(8)
    if kind == 0:
        return rng.choice([0, -1, 2**63, 10**4000 if rng.random() < 0.1 else 2**64])
    if kind == 1:
        return rng.choice([1e308, -0.0, 5e-324, float("inf"), float("nan")])
    if kind == 2:
        return None
    if kind == 3:
        return rng.choice([True, False])
    if kind == 4 and depth < 3:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind == 5 and depth < 3:
        return {str(rng.randint(0, 9)): _value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return rng.choice(["", "x" * rng.randint(0, 300), _MODULE.public_key, _CAP, "\ud800", "a\x00b"])


def generate(rng: random.Random) -> bytes:
    choice = rng.randrange(7)
    if choice == 0:  # deep nesting
        depth = rng.choice([100, 1000, 100_000])
        return b'{"command": "inventory", "x": ' + b"[" * depth + b"]" * depth + b"}"
    if choice == 1:  # a huge integer
        return b'{"command": "inventory", "x": ' + b"7" * rng.choice([4300, 4301, 20_000]) + b"}"
    if choice == 2:  # non-UTF-8
        return b'{"command": "' + bytes(rng.randrange(128, 256) for _ in range(4)) + b'"}'
    if choice == 3:  # unknown commands
        return _line({"command": rng.choice(["", "INVENTORY", "reboot", "call " * 3, "\u2603"])})
    if choice == 4:  # not an object
        return _line(_value(rng))
    commands = [
        "inventory",
        "start-actor",
        "stop-actor",
        "replace-actor",
        "add-provider",
        "remove-provider",
        "bind",
        "unbind",
        "call",
    ]
    fields = ["actor", "path", "capability", "binding", "values", "operation", "payload_b64"]
    message: dict[str, object] = {"command": rng.choice(commands)}
    for name in rng.sample(fields, rng.randint(0, len(fields))):
        if name == "actor" and rng.random() < 0.5:
            message[name] = _MODULE.public_key
        elif name == "capability" and rng.random() < 0.5:
            message[name] = _CAP
        elif name == "path" and rng.random() < 0.5:
            message[name] = rng.choice([_State.actor_path, "/nonexistent.wasm", "", "/"])
        else:
            message[name] = _value(rng)  # wrong types, huge numbers, nesting
    return _line(message)


TARGET = Target(
    name="control",
    run=run,
    seeds=_seeds(),
    generate=generate,
    setup=setup,
    teardown=teardown,
    deadline=10.0,
)
