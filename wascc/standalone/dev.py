"""The development loop behind ``wascc dev DIR``: edit, rebuild, sign, hot-swap.

It watches an actor's source directory; when a source file changes it

1. rebuilds: the given command, else ``make -C DIR`` when DIR has a
   Makefile, else clang with the SDK's flags when DIR holds one C file;
2. signs the result with local development keys (an account shared by every
   actor you develop, and a module key per actor directory, generated 0600 on
   first use under ``$WASCC_DEV_DIR``, default ``~/.local/share/wascc/dev``);
3. hot-swaps it into a running host through its control socket
   (``replace-actor``; ``start-actor`` the first time, then the bindings
   asked for with ``--bind``), so calls in flight finish on the old module
   and none fails.

Each step prints one line; a failed build or a refused module prints the
reason and the loop goes on watching.  The host must accept the development
account (start it without ``--trusted-issuer`` or with the printed key).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wascc.errors import WasccError
from wascc.sdk import ACTOR_CFLAGS, ACTOR_LDFLAGS, include_dir
from wascc.standalone.control import request
from wascc.wire.claims import sign_module
from wascc.wire.keys import KeyPair, KeyType, stored_key

__all__ = ["BindRequest", "DevError", "DevLoop", "dev_keys_dir"]

#: Files that are never sources: build outputs, editors' droppings, VCS.
IGNORED_DIRS = {"build", ".git", ".wascc", "node_modules", "target", "__pycache__"}
IGNORED_SUFFIXES = (".wasm", ".o", ".swp", ".tmp", "~")


class DevError(WasccError):
    """One step of the development loop failed (the loop goes on)."""


@dataclass(frozen=True)
class BindRequest:
    """A binding to set after the actor first starts (``--bind CAP[:NAME] -v K=V``)."""

    capability: str
    binding: str = "default"
    values: dict[str, str] = field(default_factory=dict)


def dev_keys_dir() -> Path:
    """Where the development keys live."""
    explicit = os.environ.get("WASCC_DEV_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "wascc" / "dev"


def _sources(directory: Path) -> dict[Path, tuple[int, int]]:
    """(size, mtime) of every source file under ``directory``."""
    found: dict[Path, tuple[int, int]] = {}
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if d not in IGNORED_DIRS and not d.startswith(".")]
        for name in files:
            if name.startswith(".") or name.endswith(IGNORED_SUFFIXES):
                continue
            path = Path(root) / name
            try:
                st = path.stat()
            except OSError:
                continue
            found[path] = (st.st_size, st.st_mtime_ns)
    return found


class DevLoop:
    """Rebuild, sign and hot-swap one actor whenever its sources change."""

    def __init__(
        self,
        directory: Path,
        *,
        control: Path,
        caps: Iterable[str] = (),
        name: str | None = None,
        build: str | None = None,
        wasm: Path | None = None,
        binds: Iterable[BindRequest] = (),
        keys_dir: Path | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.directory = directory.resolve()
        if not self.directory.is_dir():
            raise DevError(f"{directory} is not a directory")
        self.control = control
        self.caps = tuple(caps)
        self.name = name or self.directory.name
        self.build_command = build
        self.wasm = wasm
        self.binds = tuple(binds)
        self.say = say
        keys = keys_dir or dev_keys_dir()
        self.account = stored_key(keys / "account.nk", KeyType.ACCOUNT)
        tag = hashlib.sha256(str(self.directory).encode()).hexdigest()[:8]
        self.module: KeyPair = stored_key(
            keys / "modules" / f"{self.name}-{tag}.nk", KeyType.MODULE
        )
        self.out = self.directory / "build"
        self.started = False
        self.swaps = 0

    # ---- the three steps ---------------------------------------------------

    def _command(self) -> tuple[list[str] | str, Path | None]:
        """The build command and the module it produces (None: find the newest)."""
        if self.build_command:
            return self.build_command, self.wasm
        if (self.directory / "Makefile").is_file():
            return ["make", "-C", str(self.directory)], self.wasm
        sources = sorted(self.directory.glob("*.c"))
        if len(sources) != 1:
            raise DevError(
                f"{self.directory} has no Makefile and {len(sources)} C files: "
                "say how to build it with --build"
            )
        include = include_dir()
        if include is None:
            raise DevError("the SDK headers are not installed (see `wascc sdk`)")
        target = self.wasm or self.out / f"{self.name}.wasm"
        target.parent.mkdir(parents=True, exist_ok=True)
        clang = os.environ.get("CLANG", "clang")
        cmd = [clang, *ACTOR_CFLAGS, f"-I{include}", *ACTOR_LDFLAGS, "-o", str(target)]
        return [*cmd, str(sources[0])], target

    def build(self) -> Path:
        """Run the build; the module it produced."""
        command, target = self._command()
        started = time.time()
        shown = command if isinstance(command, str) else shlex.join(command)
        try:
            done = subprocess.run(
                command,
                shell=isinstance(command, str),
                cwd=self.directory,
                capture_output=True,
                text=True,
                check=False,
            )
        except OSError as exc:
            raise DevError(f"cannot run `{shown}`: {exc.strerror or exc}") from exc
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
            raise DevError(f"`{shown}` failed (exit {done.returncode}):\n{tail}")
        module = target or self._newest_module(started)
        if not module.is_file():
            raise DevError(f"`{shown}` succeeded but {module} is not there")
        return module

    def _newest_module(self, since: float) -> Path:
        modules = [
            p
            for p in self.directory.rglob("*.wasm")
            if not p.name.endswith("_dev.wasm") and p.stat().st_mtime >= since - 1
        ]
        if not modules:
            raise DevError("the build produced no .wasm file: name it with --wasm")
        return max(modules, key=lambda p: p.stat().st_mtime)

    def sign(self, module: Path) -> Path:
        """Sign with the development keys; the signed file (``build/<name>_dev.wasm``)."""
        signed = sign_module(
            module.read_bytes(),
            issuer=self.account,
            subject=self.module,
            name=self.name,
            caps=self.caps,
            ver="dev",
        )
        self.out.mkdir(parents=True, exist_ok=True)
        target = self.out / f"{self.name}_dev.wasm"
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(signed)
        tmp.replace(target)
        return target

    def _ask(self, command: str, **args: Any) -> dict[str, Any]:
        answer = request(self.control, command, **args)
        if not answer.get("ok"):
            raise DevError(f"{command}: {answer.get('error', 'refused')}")
        return answer

    def deploy(self, signed: Path) -> str:
        """Hot-swap the signed module into the host (start it the first time)."""
        key = self.module.public_key
        running = any(a.get("public_key") == key for a in self._ask("inventory")["actors"])
        if running:
            self._ask("replace-actor", actor=key, path=str(signed))
            self.swaps += 1
            return f"swapped {self.name} ({key}) in the host at {self.control}"
        self._ask("start-actor", path=str(signed))
        for b in self.binds:
            self._ask(
                "bind", actor=key, capability=b.capability, binding=b.binding, values=b.values
            )
            self.say(f"bound {self.name} to {b.capability} ({b.binding})")
        self.started = True
        return f"started {self.name} ({key}) in the host at {self.control}"

    # ---- the loop ----------------------------------------------------------

    def once(self) -> bool:
        """Build, sign and deploy once; False (after saying why) if a step failed."""
        try:
            t0 = time.monotonic()
            module = self.build()
            self.say(f"built {module.name} in {time.monotonic() - t0:.1f}s")
            signed = self.sign(module)
            self.say(f"signed {signed.name} as {self.module.public_key}")
            self.say(self.deploy(signed))
        except WasccError as exc:
            self.say(f"error: {exc}")
            return False
        return True

    def run(self, *, interval: float = 0.5, rounds: int | None = None) -> None:
        """Deploy now, then again after every change, until interrupted.

        ``rounds`` stops after that many deploy attempts (for tests).
        """
        self.say(
            f"wascc dev: watching {self.directory}; dev account {self.account.public_key} "
            "(the host must trust it)"
        )
        seen = _sources(self.directory)
        attempts = 1
        self.once()
        while rounds is None or attempts < rounds:
            time.sleep(interval)
            now = _sources(self.directory)
            if now == seen:
                continue
            changed = sorted(
                str(p.relative_to(self.directory))
                for p in set(now) | set(seen)
                if now.get(p) != seen.get(p)
            )
            time.sleep(interval / 2)  # let an editor finish writing
            seen = _sources(self.directory)
            self.say(f"changed: {', '.join(changed)}")
            attempts += 1
            self.once()
