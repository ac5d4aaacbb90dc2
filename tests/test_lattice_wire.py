"""The lattice's wire (CONTRACTS section 5): invocation shapes, the anti-forgery JWT, config."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import msgpack
import pytest

from wascc.errors import AntiforgeryError, CodecError, LatticeError, ManifestError
from wascc.lattice.config import LatticeConfig, Subjects
from wascc.lattice.events import cloud_event, read_event
from wascc.lattice.member import binding_record_key, builtin_labels
from wascc.standalone.manifest import parse_manifest
from wascc.wire.keys import KeyPair, KeyType
from wascc.wire.lattice import (
    BusInvocation,
    BusResponse,
    Entity,
    capability_subject,
    check_invocation,
    entity_url,
    invocation_hash,
)

HOST = KeyPair.generate(KeyType.SERVER)
ACTOR = KeyPair.generate(KeyType.MODULE).public_key


def signed(msg: bytes = b"\x01\x02", **kw: object) -> BusInvocation:
    return BusInvocation.signed(
        HOST, Entity.of_actor(ACTOR), Entity.of_capability("wascc:keyvalue", "default"),
        "Add", msg, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_an_invocation_is_a_map_with_msg_as_an_array_of_uints_and_entity_enums() -> None:
    inv = signed(b"\x00\xff")
    wire = msgpack.unpackb(inv.encode(), strict_map_key=False)
    assert wire["msg"] == [0, 255]
    assert wire["origin"] == {0: ACTOR}
    assert wire["target"] == {1: {"capid": "wascc:keyvalue", "binding": "default"}}
    assert set(wire) == {"origin", "target", "operation", "msg", "id", "encoded_claims", "host_id"}
    assert wire["host_id"] == HOST.public_key
    assert BusInvocation.decode(inv.encode()) == inv


def test_a_deadline_rides_as_an_extra_key_the_original_ignores() -> None:
    inv = signed(deadline=1_700_000_000_000)
    wire = msgpack.unpackb(inv.encode(), strict_map_key=False)
    assert wire["deadline"] == 1_700_000_000_000
    assert BusInvocation.decode(inv.encode()).deadline == 1_700_000_000_000


def test_decoding_accepts_bin_msg_positional_arrays_and_variant_names() -> None:
    inv = signed(b"abc")
    as_array = msgpack.packb(
        [{"Actor": ACTOR}, {"Capability": {"capid": "wascc:keyvalue", "binding": "default"}},
         "Add", b"abc", inv.id, inv.encoded_claims, inv.host_id],
        use_bin_type=True,
    )  # fmt: skip
    decoded = BusInvocation.decode(as_array + b"trailing")
    assert decoded.msg == b"abc" and decoded.target.capid == "wascc:keyvalue"
    check_invocation(decoded)


@pytest.mark.parametrize(
    "payload",
    [b"", b"\xc1", msgpack.packb(7), msgpack.packb({"origin": {0: 1}, "target": {}, "msg": []}),
     msgpack.packb({"origin": {5: "x"}, "target": {0: "y"}, "msg": [300]})],
)  # fmt: skip
def test_garbage_is_a_codec_error(payload: bytes) -> None:
    with pytest.raises(CodecError):
        BusInvocation.decode(payload)


def test_a_response_carries_msg_error_and_the_invocation_id() -> None:
    wire = msgpack.unpackb(BusResponse("id-1", b"\x07", None).encode())
    assert wire == {"msg": [7], "error": None, "invocation_id": "id-1"}
    assert BusResponse.decode(BusResponse("id-2", b"", "boom").encode()).error == "boom"


def test_urls_and_hash_follow_the_protocol() -> None:
    assert entity_url(Entity.of_actor(ACTOR)) == f"wasmbus://{ACTOR}"
    assert entity_url(Entity.of_capability("wascc:KeyValue", "Cache")) == (
        "wasmbus://wascc/keyvalue/cache"
    )
    assert capability_subject("wascc:http server") == "wascc.http_server"
    inv = signed(b"xyz")
    claims = json.loads(_unb64(inv.encoded_claims.split(".")[1]))
    assert claims["iss"] == HOST.public_key and claims["sub"] == inv.id
    assert claims["wascap"]["target_url"] == "wasmbus://wascc/keyvalue/default/Add"
    assert claims["wascap"]["hash"] == invocation_hash(
        f"wasmbus://{ACTOR}", "wasmbus://wascc/keyvalue/default/Add", b"xyz"
    )


def _unb64(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda i: dataclasses.replace(i, msg=b"other"), "the invocation hash does not match"),
        (lambda i: dataclasses.replace(i, operation="Get"), "target wasmbus://"),
        (lambda i: dataclasses.replace(i, origin=Entity.of_actor("system")), "origin wasmbus://"),
        (lambda i: dataclasses.replace(i, id="another"), "subject is not the invocation's id"),
        (
            lambda i: dataclasses.replace(i, host_id=KeyPair.generate(KeyType.SERVER).public_key),
            "the signature does not verify",
        ),
        (
            lambda i: dataclasses.replace(i, encoded_claims=i.encoded_claims[:-4] + "AAAA"),
            "the signature does not verify",
        ),
        (lambda i: dataclasses.replace(i, encoded_claims="a.b"), "not three segments"),
    ],
)
def test_each_forgery_is_refused_with_its_reason(change: object, reason: str) -> None:
    forged = change(signed())  # type: ignore[operator]
    with pytest.raises(AntiforgeryError, match=r"^Antiforgery check failure: ") as caught:
        check_invocation(forged)
    assert reason in str(caught.value)


def test_the_trusted_host_list_refuses_other_valid_hosts() -> None:
    inv = signed()
    check_invocation(inv, [HOST.public_key])
    with pytest.raises(AntiforgeryError, match="not on the trusted host list"):
        check_invocation(inv, [KeyPair.generate(KeyType.SERVER).public_key])


def test_an_account_key_cannot_sign_invocations() -> None:
    with pytest.raises(Exception, match="server key"):
        BusInvocation.signed(
            KeyPair.generate(KeyType.ACCOUNT), Entity.of_actor("system"),
            Entity.of_actor(ACTOR), "Echo", b"",
        )  # fmt: skip


def test_subjects_with_and_without_a_namespace() -> None:
    assert Subjects("").actor(ACTOR) == f"wasmbus.actor.{ACTOR}"
    s = Subjects("prod")
    assert s.provider("wascc:keyvalue", "default") == "prod.wasmbus.provider.wascc.keyvalue.default"
    assert s.provider_actor("wascc:keyvalue", "x", ACTOR).endswith(f".keyvalue.x.{ACTOR}")
    assert s.inventory("hosts") == "prod.wasmbus.inventory.hosts"
    assert s.events == "prod.wasmbus.events"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"url": "http://x:4222"}, "is not a NATS URL"),
        ({"url": "nats://h:1", "namespace": "a.b"}, "letters and digits"),
        ({"url": "nats://h:1", "trusted_hosts": ("AB",)}, "server key"),
        ({"url": "nats://h:1", "heartbeat": 0}, "heartbeat must be more than 0"),
        ({"url": "nats://h:1", "creds": Path("/nonexistent.creds")}, "does not exist"),
    ],
)
def test_a_bad_lattice_config_is_a_lattice_error(kw: dict[str, object], message: str) -> None:
    with pytest.raises(LatticeError, match=message):
        LatticeConfig(**kw)  # type: ignore[arg-type]


def test_the_host_key_is_kept_0600_in_the_state_dir(tmp_path: Path) -> None:
    config = LatticeConfig("nats://127.0.0.1:4222", namespace="NS", state_dir=tmp_path / "s")
    assert config.namespace == "ns"
    first = config.host_key()
    assert first.public_key.startswith("N") and config.host_key().seed == first.seed
    assert (tmp_path / "s" / "host.nk").stat().st_mode & 0o777 == 0o600
    ephemeral = dataclasses.replace(config, ephemeral_key=True).host_key()
    assert ephemeral.seed != first.seed


def test_the_manifest_lattice_section(tmp_path: Path) -> None:
    text = (
        "lattice:\n  url: nats://10.0.0.5:4222\n  namespace: prod\n  heartbeat: 2\n"
        "  trusted_hosts: [NABC]\n  state_dir: state\n"
    )
    m = parse_manifest(text, source="h.yaml", base_dir=tmp_path, fmt="yaml")
    assert m.lattice["url"] == "nats://10.0.0.5:4222" and m.lattice["heartbeat"] == 2
    assert m.lattice["state_dir"] == tmp_path / "state"
    assert m.lattice["trusted_hosts"] == ("NABC",)
    for bad, why in (
        ("lattice:\n  namespace: x\n", "lattice.url: missing"),
        ("lattice:\n  url: nats://h:1\n  heartbeat: -1\n", "must be a number above 0"),
        ("lattice:\n  url: nats://h:1\n  port: 1\n", "unknown key"),
        ("lattice:\n  url: nats://h:1\n  ephemeral_key: yes please\n", "true or false"),
    ):
        with pytest.raises(ManifestError, match=why):
            parse_manifest(bad, source="h.yaml", base_dir=tmp_path, fmt="yaml")


def test_events_are_cloud_events_holding_a_tagged_bus_event() -> None:
    raw = cloud_event({"ActorStarted": {"actor": ACTOR, "host": HOST.public_key}})
    envelope = json.loads(raw)
    assert envelope["type"] == "wasmbus.events.actor_started"
    assert envelope["source"] == "https://wascc.dev/lattice/events"
    assert envelope["datacontenttype"] == "application/json" and envelope["time"].endswith("Z")
    name, body, _ = read_event(raw)
    assert name == "ActorStarted" and body == {"actor": ACTOR, "host": HOST.public_key}
    with pytest.raises(LatticeError):
        read_event(b'{"data": "[1, 2]"}')


def test_builtin_labels_and_binding_keys() -> None:
    labels = builtin_labels()
    assert set(labels) == {"hostcore.arch", "hostcore.os", "hostcore.osfamily"}
    key = binding_record_key(ACTOR, "wascc:keyvalue", "any name: with spaces")
    assert key.startswith("binding.") and " " not in key and ":" not in key


def test_control_requests_and_label_constraints() -> None:
    from wascc.lattice.control import _request, labels_match

    assert labels_match({"zone": "east", "hostcore.os": "linux"}, {"zone": "east"})
    assert not labels_match({"zone": "east"}, {"zone": "west"})
    assert not labels_match({}, {"zone": "east"})
    assert labels_match({"zone": "east"}, {})
    assert _request(b'{"actor_id": "x", "constraints": {"a": "b"}}', ("actor_id",))["actor_id"]
    for bad, why in (
        (b"[1]", "a JSON object"),
        (b"{}", "needs the text field `actor_id`"),
        (b'{"actor_id": "x", "constraints": {"a": 1}}', "constraints"),
        (b"{not json", "control request"),
    ):
        with pytest.raises(LatticeError, match=why):
            _request(bad, ("actor_id",))


def test_the_command_line_wins_over_the_manifest_key_by_key(tmp_path: Path) -> None:
    from wascc.standalone.daemon import Daemon, Options

    manifest = tmp_path / "host.yaml"
    manifest.write_text("lattice:\n  url: nats://10.0.0.5:4222\n  namespace: fromfile\n")
    daemon = Daemon(Options(manifest=manifest, lattice={"namespace": "cli", "heartbeat": 1.5}))
    config = daemon.lattice_config()
    assert config is not None
    assert (config.url, config.namespace, config.heartbeat) == ("nats://10.0.0.5:4222", "cli", 1.5)
    assert Daemon(Options()).lattice_config() is None
