"""``mqtt://``: a binding's own MQTT 5 connection through paho-mqtt 2.

**Why paho-mqtt**: the Eclipse Foundation's client, the most used MQTT client
for Python, maintained (2.x has typed callbacks), MQTT 5 complete (response
topics for request/reply, subscription identifiers, shared subscriptions),
thread-safe with its own network thread (no event loop to bridge), and
reconnects with exponential backoff by itself.  gmqtt and aiomqtt are
asyncio (a loop per connection again) and smaller.

Subjects become topics (``.`` -> ``/``, ``*`` -> ``+``, ``>`` -> ``#``); a queue
group is the shared subscription ``$share/<group>/<topic>``; ``replyTo`` is the
MQTT 5 response topic.  ``Request`` publishes with a response topic under this
connection's own inbox and waits for the first message there.  Each of the
binding's subscriptions carries an MQTT 5 subscription identifier, so
overlapping subscriptions are told apart; subscriptions are made again after
every reconnect (the session is clean).  ``QOS`` applies to publishes and
subscriptions, ``RETAIN`` to publishes.
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from wascc.errors import ProviderCallError, ProviderError

from .backend import Backend, BackendStatus
from .broker import Sink
from .config import Settings
from .nats import redact
from .subjects import matches, to_subject, to_topic

__all__ = ["MqttBackend"]

log = logging.getLogger(__name__)

_KEEPALIVE = 30


def _properties(packet_type: int) -> Properties:
    """MQTT 5 properties for one packet type (paho's constructor is untyped)."""
    return Properties(packet_type)  # type: ignore[no-untyped-call]


class _Sub:
    __slots__ = ("pattern", "sink", "topic_filter")

    def __init__(self, pattern: str, topic_filter: str, sink: Sink) -> None:
        self.pattern = pattern
        self.topic_filter = topic_filter
        self.sink = sink


class MqttBackend(Backend):
    """One MQTT 5 connection with paho's network thread."""

    def __init__(self, settings: Settings, label: str) -> None:
        self.name = redact(settings.url)
        self._settings = settings
        self._label = label
        parts = urlsplit(settings.url)
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"wascc-{label[:16]}-{secrets.token_hex(4)}",
            protocol=mqtt.MQTTv5,
        )
        if parts.username:
            password = unquote(parts.password) if parts.password else None
            self._client.username_pw_set(unquote(parts.username), password)
        if parts.scheme.lower() == "mqtts":
            self._client.tls_set()
        low = max(1, math.ceil(settings.reconnect_wait))
        self._client.reconnect_delay_set(low, max(low, math.ceil(settings.reconnect_max_wait)))
        self._lock = threading.Lock()
        self._subs: dict[int, _Sub] = {}
        self._ids = itertools.count(2)  # 1 is the inbox
        self._inbox = f"_INBOX/{secrets.token_hex(8)}"
        self._waiting: dict[str, list[bytes]] = {}
        self._answered = threading.Condition(self._lock)
        self._acks: dict[int, threading.Event] = {}
        self._connected = threading.Event()
        self._closed = False
        self._ever_connected = False
        self._last_error = ""
        self._disconnects = 0
        self._reconnects = 0
        self._refused = 0
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        host, port = parts.hostname or "", parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        try:
            self._client.connect(host, port, keepalive=_KEEPALIVE, clean_start=True)
        except (OSError, ValueError) as exc:
            why = "connection refused" if isinstance(exc, ConnectionRefusedError) else str(exc)
            raise ProviderError(f"cannot connect to {self.name}: {why}") from None
        self._client.loop_start()
        if not self._connected.wait(settings.connect_timeout):
            self.close()
            raise ProviderError(
                f"cannot connect to {self.name} within {settings.connect_timeout:g}s "
                f"({self._last_error or 'no CONNACK'})"
            )

    # ---- paho callbacks (its network thread) ---------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _u: Any, _flags: Any, reason: ReasonCode, _p: Any
    ) -> None:
        if reason.is_failure:
            self._last_error = f"refused: {reason}"
            log.warning("%s refused the connection (%s): %s", self.name, self._label, reason)
            return
        with self._lock:
            subs = [(1, f"{self._inbox}/+")] + [(i, s.topic_filter) for i, s in self._subs.items()]
        for sid, topic_filter in subs:
            self._send_subscribe(sid, topic_filter)
        if self._ever_connected:
            self._reconnects += 1
            log.info("reconnected to %s (%s); subscriptions restored", self.name, self._label)
        self._ever_connected = True
        self._connected.set()

    def _on_disconnect(
        self, _c: mqtt.Client, _u: Any, _flags: Any, reason: ReasonCode, _p: Any
    ) -> None:
        if self._connected.is_set() and not self._closed:
            self._disconnects += 1
            log.warning("disconnected from %s (%s): %s", self.name, self._label, reason)
        self._last_error = str(reason)
        self._connected.clear()

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, _codes: Any, _p: Any) -> None:
        with self._lock:
            event = self._acks.pop(mid, None)
        if event is not None:
            event.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        topic = msg.topic
        props = msg.properties
        body = bytes(msg.payload)
        if topic.startswith(self._inbox):
            with self._lock:
                box = self._waiting.get(topic)
                if box is not None and not box:
                    box.append(body)
                    self._answered.notify_all()
            return
        subject = to_subject(topic)
        reply = getattr(props, "ResponseTopic", "") if props is not None else ""
        reply_to = to_subject(reply) if reply else ""
        ids = getattr(props, "SubscriptionIdentifier", None) if props is not None else None
        if ids:
            targets = [self._subs.get(i) for i in ids]
        else:  # a broker that sends no identifiers: match ourselves
            targets = [s for s in list(self._subs.values()) if matches(s.pattern, subject)]
        for sub in targets:
            if sub is not None:
                sub.sink(subject, reply_to, body)

    def _send_subscribe(self, sid: int, topic_filter: str) -> threading.Event:
        props = _properties(PacketTypes.SUBSCRIBE)
        props.SubscriptionIdentifier = sid
        event = threading.Event()
        with self._lock:
            rc, mid = self._client.subscribe(
                topic_filter, options=SubscribeOptions(qos=self._settings.qos), properties=props
            )
            if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None:
                self._acks[mid] = event
        return event

    # ---- the Backend API ---------------------------------------------------------------------

    def subscribe(self, subject: str, queue_group: str, sink: Sink) -> object:
        topic = to_topic(subject)
        topic_filter = f"$share/{queue_group}/{topic}" if queue_group else topic
        with self._lock:
            sid = next(self._ids)
            self._subs[sid] = _Sub(subject, topic_filter, sink)
        if self._connected.is_set():
            acked = self._send_subscribe(sid, topic_filter)
            if not acked.wait(self._settings.connect_timeout):
                log.warning("%s did not acknowledge the subscription %s", self.name, topic_filter)
        return sid

    def unsubscribe(self, handle: object) -> None:
        assert isinstance(handle, int)
        with self._lock:
            sub = self._subs.pop(handle, None)
        if sub is not None and not self._closed:
            self._client.unsubscribe(sub.topic_filter)

    def publish(self, subject: str, reply_to: str, body: bytes) -> None:
        props = None
        if reply_to:
            props = _properties(PacketTypes.PUBLISH)
            props.ResponseTopic = to_topic(reply_to)
        self._send(subject, body, props)

    def _send(self, subject: str, body: bytes, props: Properties | None) -> None:
        s = self._settings
        info = self._client.publish(to_topic(subject), body, s.qos, s.retain, props)
        rc = info.rc
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            return
        if rc == MQTTErrorCode.MQTT_ERR_NO_CONN and s.qos > 0:
            return  # paho keeps QoS 1/2 messages and sends them after the reconnect
        self._refused += 1
        why = (
            "disconnected (QOS 0 messages are not kept)"
            if rc == MQTTErrorCode.MQTT_ERR_NO_CONN
            else mqtt.error_string(rc)
        )
        raise ProviderCallError(
            f"Publish to {subject!r} refused by {self.name}: {why} ({self._refused} refused so far)"
        )

    def request(self, subject: str, body: bytes, timeout: float) -> bytes:
        reply_topic = f"{self._inbox}/{secrets.token_hex(8)}"
        props = _properties(PacketTypes.PUBLISH)
        props.ResponseTopic = reply_topic
        box: list[bytes] = []
        with self._lock:
            self._waiting[reply_topic] = box
        try:
            self._send(subject, body, props)
            with self._answered:
                if self._answered.wait_for(lambda: bool(box), timeout):
                    return box[0]
        finally:
            with self._lock:
                self._waiting.pop(reply_topic, None)
        raise ProviderCallError(
            f"Request to {subject!r} got no answer within {timeout * 1000:.0f} ms"
        )

    def status(self) -> BackendStatus:
        up = self._connected.is_set()
        detail = "connected" if up else f"disconnected ({self._last_error or '?'})"
        return BackendStatus(
            up,
            f"{self.name}: {detail}",
            disconnects=self._disconnects,
            reconnects=self._reconnects,
            publish_refused=self._refused,
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()
