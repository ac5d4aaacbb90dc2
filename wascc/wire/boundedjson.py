"""JSON from untrusted bytes, with its size, depth and numbers bounded.

``json.loads`` alone lets a hostile document escape as the wrong error or
cost what it likes: nesting 100,000 deep raises RecursionError, an integer of
5,000 digits raises ValueError (Python's int-string limit), ``NaN`` and
``Infinity`` are accepted although JSON has no such numbers, and of two equal
keys the last silently wins.  :func:`loads` checks the size and the nesting
depth before parsing (one linear scan over strings and brackets), reads
integers of at most ``max_int_digits`` digits, refuses NaN, Infinity and
floats that overflow, and refuses repeated keys.  Each refusal raises the
caller's own error class (a :class:`~wascc.errors.WasccError`), so claims,
manifests and the control socket report it their way.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

__all__ = ["json_depth", "loads"]

# A string (closed, or running to the end: an unclosed string costs one pass,
# not one pass per quote), or one bracket.  Linear: every branch is forced.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.?[^"\\]*)*(?:"|\Z)|[\[\]{}]', re.DOTALL)


class _Refused(Exception):
    """Raised inside json's hooks; turned into the caller's error by ``loads``."""


def json_depth(text: str, stop_above: int | None = None) -> int:
    """The deepest nesting of arrays and objects in ``text`` (strings skipped).

    With ``stop_above``, the scan stops as soon as the depth exceeds it.
    """
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    break
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def loads(
    data: str | bytes,
    *,
    what: str,
    error: Callable[[str], Exception],
    max_bytes: int,
    max_depth: int,
    max_int_digits: int = 64,
) -> Any:
    """Parse ``data`` (UTF-8) as JSON within the bounds, or raise ``error(message)``.

    ``what`` names the document and starts each message ("the token's claims", a file).
    """
    if len(data) > max_bytes:
        raise error(f"{what}: longer than {max_bytes} bytes ({len(data)})")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{what}: not UTF-8 (byte {exc.start})") from exc
    else:
        text = data
    if json_depth(text, stop_above=max_depth) > max_depth:
        raise error(f"{what}: nested deeper than {max_depth} levels")

    def parse_int(digits: str) -> int:
        if len(digits.lstrip("-")) > max_int_digits:
            raise _Refused(f"an integer has more than {max_int_digits} digits")
        return int(digits)

    def parse_float(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):
            raise _Refused(f"the number {literal[:40]} is too large for a float")
        return value

    def parse_constant(name: str) -> Any:
        raise _Refused(f"{name} is not a JSON number")

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if len(out) != len(items):
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    raise _Refused(f"the key {key[:60]!r} appears twice in one object")
                seen.add(key)
        return out

    try:
        return json.loads(
            text,
            parse_int=parse_int,
            parse_float=parse_float,
            parse_constant=parse_constant,
            object_pairs_hook=pairs,
        )
    except _Refused as exc:
        raise error(f"{what}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise error(
            f"{what}: line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}"
        ) from exc
