"""``wascc:messaging``: actors publish, request and subscribe (CONTRACTS section 3).

An actor calls ``Publish`` with a BrokerMessage ``{subject, replyTo, body}``
(empty reply) or ``Request`` with a RequestMessage ``{subject, body, timeout
/* ms */}`` (reply: the raw body of the first answer; no answer within the
timeout is an error naming the subject and the milliseconds; ``timeout`` 0
takes ``REQUEST_TIMEOUT``).  Each subject in ``SUBSCRIPTION`` becomes one
subscription of the actor, made on BindActor and gone on RemoveActor, whose
messages arrive as ``DeliverMessage`` BrokerMessages, in order (see
``delivery.py`` for the bounded queue and its full policy).  The provider
never answers a request by itself: the actor publishes to ``replyTo``.

Three backends, chosen per binding by ``URL``: none = the embedded
in-process broker (``broker.py``: NATS subjects, ``*``/``>``, queue groups);
``nats://`` / ``tls://`` = NATS through nats-py (``nats.py``); ``mqtt://`` /
``mqtts://`` = MQTT 5 through paho-mqtt (``mqtt.py``).  Bindings that name a
server get a connection of their own, as the original NATS provider did.

Binding values (the original NATS provider's names; case-insensitive):

===================== ============ =================================================
``URL``               (none)       ``nats://host:4222`` (comma-separated for a
                                   cluster), ``mqtt://[user:pass@]host:1883``; none =
                                   the in-process broker
``SUBSCRIPTION``      (none)       comma-separated subjects, ``*`` and ``>`` allowed
``QUEUEGROUP_NAME``   (none)       one queue group for all of them (MQTT: a shared
                                   subscription ``$share/<name>/<topic>``)
``CLIENT_JWT``        (none)       NATS user JWT; needs ``CLIENT_SEED``
``CLIENT_SEED``       (none)       the user seed (``SU...``) that signs the nonce
``CREDSFILE``         (none)       a NATS ``.creds`` file (JWT and seed)
``QOS``               0            MQTT QoS of publishes and subscriptions (0, 1, 2)
``RETAIN``            false        MQTT retain flag of publishes
``MAX_PENDING``       65536        messages one subscription may queue for a slow
                                   actor; more are dropped and counted
``MAX_PENDING_BYTES`` 67108864     the same bound in bytes
``PUBLISH_BUFFER``    8388608      NATS: bytes of publishes kept while disconnected;
                                   beyond it ``Publish`` is an error
``CONNECT_TIMEOUT``   5            seconds BindActor waits for the server
``RECONNECT_WAIT``    0.5          first reconnect delay (s), doubled per attempt
``RECONNECT_MAX_WAIT`` 10          cap of the reconnect delay (s)
``REQUEST_TIMEOUT``   5000         ms a ``Request`` with ``timeout`` 0 waits
===================== ============ =================================================

A bad value, a URL this provider cannot use, a JWT without its seed or a
server that does not answer within ``CONNECT_TIMEOUT`` fails BindActor (the
host's ``set_binding`` raises ``BindingError``); other bindings go on.
Health: unhealthy while a connection is down; the message carries the
counters of what was dropped, failed and refused (``MessagingProvider.stats()``).

Measured (``benchmarks/bench_messaging.py``, this 2-core machine, medians):
Python publishing on the in-process broker into one actor, 104,000-164,000
messages/s (p50 6 us); actor -> in-process -> actor 100,000-120,000 (13 us);
actor -> NATS -> actor 48,000-72,000 messages/s against 89,000-192,000 for bare
nats-py (a ratio of 0.25-0.55 depending on the load of the machine, p50 about
100-200 us against 70-130 us); MQTT QoS 1 through actors matches bare paho.
Two changes moved the NATS path: one event loop for all of a provider's
connections (55,000 -> 70,000 actor publishes/s) and reading Publish with one
msgpack call (handle 4.9 -> 0.9 us).  What remains is the host's own Python
path for an actor's host call and for a dispatch into an actor (8-9 us per
message together, already more than bare nats-py spends publishing and
receiving one): ``(a)/(b) >= 0.5`` on a quiet machine needs that path in C.
"""

from __future__ import annotations

from wascc.hookspecs import hookimpl

from .broker import Broker
from .config import Settings
from .delivery import DeliveryStats
from .provider import (
    CAPABILITY_ID,
    OP_DELIVER_MESSAGE,
    OP_PUBLISH,
    OP_REQUEST,
    MessagingProvider,
    MessagingStats,
)
from .subjects import to_subject, to_topic

__all__ = [
    "CAPABILITY_ID",
    "OP_DELIVER_MESSAGE",
    "OP_PUBLISH",
    "OP_REQUEST",
    "Broker",
    "DeliveryStats",
    "MessagingProvider",
    "MessagingStats",
    "Settings",
    "to_subject",
    "to_topic",
]


@hookimpl
def wascc_providers() -> list[type[MessagingProvider]]:
    return [MessagingProvider]
