"""Subjects with NATS semantics, and their MQTT topic spelling.

A subject is tokens separated by ``.``; in a subscription ``*`` matches one
token and ``>`` (last token only) matches one or more.  MQTT spells the same
with ``/``, ``+`` and ``#``; :func:`to_topic` and :func:`to_subject` map one to
the other so an actor written for NATS works unchanged over MQTT.
"""

from __future__ import annotations

from wascc.errors import ProviderCallError

__all__ = ["check_literal", "check_subject", "matches", "to_subject", "to_topic"]

_BAD_CHARS = frozenset(" \t\r\n\x00")
_TO_TOPIC = str.maketrans({".": "/", "*": "+", ">": "#"})
_TO_SUBJECT = str.maketrans({"/": ".", "+": "*", "#": ">"})


_KNOWN_LITERALS: dict[str, None] = {}  # literal subjects already checked (bounded)
_KNOWN_LIMIT = 4096


def check_literal(subject: str) -> str:
    """:func:`check_subject` without wildcards, remembering subjects that passed (hot path)."""
    if subject in _KNOWN_LITERALS:
        return subject
    check_subject(subject, wildcards=False)
    if len(_KNOWN_LITERALS) >= _KNOWN_LIMIT:
        _KNOWN_LITERALS.clear()
    _KNOWN_LITERALS[subject] = None
    return subject


def check_subject(subject: str, *, wildcards: bool) -> str:
    """``subject`` if well formed (wildcards only when allowed); else ``ProviderCallError``."""
    what = "subscription" if wildcards else "subject"
    if not subject:
        raise ProviderCallError(f"an empty {what} is not allowed")
    if any(c in _BAD_CHARS for c in subject):
        raise ProviderCallError(f"{what} {subject!r} contains whitespace or NUL")
    tokens = subject.split(".")
    for i, token in enumerate(tokens):
        if not token:
            raise ProviderCallError(f"{what} {subject!r} has an empty token")
        if token in ("*", ">"):
            if not wildcards:
                raise ProviderCallError(
                    f"subject {subject!r} has the wildcard {token!r}: one may publish only "
                    "to a literal subject"
                )
            if token == ">" and i != len(tokens) - 1:
                raise ProviderCallError(f"{what} {subject!r}: '>' must be the last token")
        elif "*" in token or ">" in token or "+" in token or "#" in token:
            raise ProviderCallError(
                f"{what} {subject!r}: wildcards must be whole tokens (token {token!r})"
            )
    return subject


def matches(pattern: str, subject: str) -> bool:
    """Whether the subscription ``pattern`` matches the literal ``subject``."""
    if pattern == subject:
        return True
    p = pattern.split(".")
    s = subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(p) == len(s)


def to_topic(subject: str) -> str:
    """The MQTT topic of a subject: ``.`` -> ``/``, ``*`` -> ``+``, ``>`` -> ``#``."""
    return subject.translate(_TO_TOPIC)


def to_subject(topic: str) -> str:
    """The subject of an MQTT topic (the inverse of :func:`to_topic`)."""
    return topic.translate(_TO_SUBJECT)
