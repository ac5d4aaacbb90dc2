"""One actor's messaging binding, read from its BindActor values (see the package doc)."""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from wascc.errors import KeyFormatError, ProviderError
from wascc.wire.keys import KeyPair, KeyType

from .subjects import check_subject

__all__ = ["Credentials", "Settings"]

CAPABILITY_ID = "wascc:messaging"

NATS_SCHEMES = frozenset({"nats", "tls"})
MQTT_SCHEMES = frozenset({"mqtt", "mqtts"})

Fail = Callable[[str], ProviderError]

_CREDS_MAX = 64 * 1024

_CREDS_JWT = re.compile(r"-----BEGIN NATS USER JWT-----\s*(\S+)\s*------END NATS USER JWT------")
_CREDS_SEED = re.compile(r"-----BEGIN USER NKEY SEED-----\s*(\S+)\s*------END USER NKEY SEED------")


@dataclass(frozen=True, slots=True)
class Credentials:
    """A NATS user JWT and the user seed that signs the server's nonce."""

    jwt: str
    seed: str

    def __repr__(self) -> str:  # never print a seed
        return f"Credentials(jwt={self.jwt[:12]}..., seed=<hidden>)"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything one binding configures; ``url`` empty = the in-process broker."""

    url: str = ""
    subscriptions: tuple[str, ...] = ()
    queue_group: str = ""
    credentials: Credentials | None = None
    qos: int = 0
    retain: bool = False
    max_pending: int = 65536
    max_pending_bytes: int = 64 * 1024 * 1024
    connect_timeout: float = 5.0
    reconnect_wait: float = 0.5
    reconnect_max_wait: float = 10.0
    publish_buffer: int = 8 * 1024 * 1024
    request_timeout_ms: int = 5000

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0].lower() if self.url else ""

    @property
    def backend(self) -> str:
        """``local``, ``nats`` or ``mqtt``."""
        scheme = self.scheme
        if not scheme:
            return "local"
        return "nats" if scheme in NATS_SCHEMES else "mqtt"

    @classmethod
    def from_values(cls, values: Mapping[str, str], who: str = "") -> Settings:
        """Parse binding values (keys case-insensitive); bad config raises ``ProviderError``."""
        where = f" for {who}" if who else ""
        d = cls()  # the defaults (a slots dataclass has no class-level defaults to read)
        v = {k.upper(): s.strip() for k, s in values.items() if not k.startswith("__wascc_")}

        def fail(text: str) -> ProviderError:
            return ProviderError(f"{CAPABILITY_ID}: {text}{where}")

        def number(key: str, default: float, low: float, *, integer: bool = False) -> float:
            raw = v.get(key, "")
            if not raw:
                return default
            try:
                value = int(raw) if integer else float(raw)
            except ValueError:
                kind = "an integer" if integer else "a number"
                raise fail(f"{key}={raw!r} is not {kind}") from None
            if not (value >= low and math.isfinite(value)):
                raise fail(f"{key}={raw!r} must be a finite number >= {low:g}")
            return value

        url = _check_url(v.get("URL", ""), fail)
        subjects = tuple(dict.fromkeys(s.strip() for s in v.get("SUBSCRIPTION", "").split(",")))
        subjects = tuple(s for s in subjects if s)
        for subject in subjects:
            try:
                check_subject(subject, wildcards=True)
            except Exception as exc:
                raise fail(f"SUBSCRIPTION: {exc}") from None
        group = v.get("QUEUEGROUP_NAME", "")
        if group and any(c in group for c in " \t.*>/+#"):
            raise fail(
                f"QUEUEGROUP_NAME={group!r} must be one token (no spaces, '.', or wildcards)"
            )
        credentials = _credentials(v, fail)
        scheme = url.split("://", 1)[0].lower() if url else ""
        if credentials is not None and scheme not in NATS_SCHEMES:
            raise fail(
                "CLIENT_JWT/CLIENT_SEED and CREDSFILE are NATS credentials; "
                f"URL {url or '(none: the in-process broker)'} does not use NATS"
            )
        qos = int(number("QOS", 0, 0, integer=True))
        if qos > 2:
            raise fail(f"QOS={qos} must be 0, 1 or 2")
        retain_raw = v.get("RETAIN", "").lower()
        if retain_raw not in ("", "true", "false", "1", "0", "yes", "no"):
            raise fail(f"RETAIN={retain_raw!r} must be true or false")
        return cls(
            url=url,
            subscriptions=subjects,
            queue_group=group,
            credentials=credentials,
            qos=qos,
            retain=retain_raw in ("true", "1", "yes"),
            max_pending=int(number("MAX_PENDING", d.max_pending, 1, integer=True)),
            max_pending_bytes=int(
                number("MAX_PENDING_BYTES", d.max_pending_bytes, 1, integer=True)
            ),
            connect_timeout=number("CONNECT_TIMEOUT", d.connect_timeout, 0.01),
            reconnect_wait=number("RECONNECT_WAIT", d.reconnect_wait, 0.01),
            reconnect_max_wait=number("RECONNECT_MAX_WAIT", d.reconnect_max_wait, 0.01),
            publish_buffer=int(number("PUBLISH_BUFFER", d.publish_buffer, 0, integer=True)),
            request_timeout_ms=int(
                number("REQUEST_TIMEOUT", d.request_timeout_ms, 1, integer=True)
            ),
        )


def _check_url(raw: str, fail: Fail) -> str:
    """The URL if this provider can use it (comma-separated for a NATS cluster)."""
    if not raw:
        return ""
    urls = [u.strip() for u in raw.split(",")]
    schemes = set()
    for url in urls:
        try:
            parts: SplitResult = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise fail(f"URL {url!r} cannot be parsed ({exc})") from None
        scheme = parts.scheme.lower()
        if scheme not in NATS_SCHEMES | MQTT_SCHEMES:
            raise fail(
                f"URL {url!r} has no scheme this provider knows (nats://, tls://, mqtt://, "
                "mqtts://; no URL = the in-process broker)"
            )
        if not parts.hostname:
            raise fail(f"URL {url!r} names no host")
        if port == 0:
            raise fail(f"URL {url!r}: port 0 is not a server's port")
        schemes.add(scheme in NATS_SCHEMES)
    if len(urls) > 1 and schemes != {True}:
        raise fail(f"URL {raw!r}: only NATS takes several servers (comma-separated)")
    return ",".join(urls)


def _read_creds(path: str, fail: Fail) -> str:
    """A .creds file's text: a regular file of at most 64 KiB (not /dev/zero, not a FIFO)."""
    try:
        with Path(path).expanduser().open("rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise fail(f"CREDSFILE {path!r} is not a regular file")
            data = f.read(_CREDS_MAX + 1)
    except OSError as exc:
        raise fail(f"CREDSFILE {path!r} cannot be read ({exc.strerror or exc})") from None
    if len(data) > _CREDS_MAX:
        raise fail(f"CREDSFILE {path!r} is larger than {_CREDS_MAX} bytes: not a .creds file")
    return data.decode("utf-8", "replace")


def _credentials(v: Mapping[str, str], fail: Fail) -> Credentials | None:
    jwt, seed, creds = v.get("CLIENT_JWT", ""), v.get("CLIENT_SEED", ""), v.get("CREDSFILE", "")
    if jwt and not seed:
        raise fail("CLIENT_JWT is set without CLIENT_SEED (the seed signs the server's nonce)")
    if seed and not jwt:
        raise fail("CLIENT_SEED is set without CLIENT_JWT")
    if jwt and creds:
        raise fail("set CLIENT_JWT + CLIENT_SEED or CREDSFILE, not both")
    if creds:
        text = _read_creds(creds, fail)
        found_jwt, found_seed = _CREDS_JWT.search(text), _CREDS_SEED.search(text)
        if not found_jwt or not found_seed:
            raise fail(f"CREDSFILE {creds!r} holds no NATS user JWT and seed")
        jwt, seed = found_jwt.group(1), found_seed.group(1)
    if not jwt:
        return None
    if jwt.count(".") != 2:
        raise fail("CLIENT_JWT is not a JWT (header.payload.signature)")
    try:
        key = KeyPair.from_seed(seed)
    except KeyFormatError as exc:
        raise fail(f"CLIENT_SEED is not an nkey seed ({exc})") from None
    if key.kind is not KeyType.USER:
        raise fail("CLIENT_SEED must be a user seed (SU...)")
    return Credentials(jwt, seed)
