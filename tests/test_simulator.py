"""The simulated terminal over real Mosquitto: door, buffering, library sync, offline passes."""
# ruff: noqa: F811 - pytest fixtures imported from tests.mqtt_support are parameter names

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import jwt
import numpy as np
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from anxin.clock import clock
from device_bridge.doors import seal_library_args
from device_bridge.mqtt import MqttServerTransport
from device_bridge.protocol import LibrarySyncArgs, embedding_to_b64, now_ms
from device_bridge.sealing import LIBRARY, derive_key
from device_bridge.signing import device_key, make_command
from device_bridge.simulator import FaceLibrary, SimulatedDevice, embedding_of
from device_bridge.simulator.__main__ import seeded_embedding
from tests.mqtt_support import (  # noqa: F401 - fixtures
    clear_retained,
    mqtt_url,
    secrets_for,
    server_and_devices,
    topic_root,
)

COMMUNITY = "community-42"
PASS_KEY = Ed25519PrivateKey.generate()


LIB_KEY = derive_key("unit-test-secret", LIBRARY)


def _sealed(args: dict, key: bytes = LIB_KEY, device_id: str = "lib-test") -> LibrarySyncArgs:
    return LibrarySyncArgs.model_validate(seal_library_args(args, key, device_id))


@dataclass
class Rig:
    server: MqttServerTransport
    dev: SimulatedDevice
    key: bytes

    async def cmd(self, op: str, args: dict | None = None, **kw: object):  # type: ignore[no-untyped-def]
        if op == "library_sync" and args:  # what the server's door service does
            args = seal_library_args(args, self.dev.library_key, self.dev.device_id)
        return await self.server.send_command(
            make_command(self.dev.device_id, op, args, self.key, **kw)  # type: ignore[arg-type]
        )

    async def events(self, n: int, timeout: float = 5.0) -> list:  # noqa: ASYNC109
        return [(await self.server.next_event(timeout)).event for _ in range(n)]

    async def event_of(self, type_: str, timeout: float = 5.0):  # type: ignore[no-untyped-def]  # noqa: ASYNC109
        while True:
            e = (await self.server.next_event(timeout)).event
            if e.type == type_:
                return e


async def _rig(url: str, root: str, dev_id: str = "gate-1", **kw: object) -> Rig:
    secrets = secrets_for(dev_id)
    kw.setdefault("stale_grace_s", 0.2)
    kw.setdefault("relock_s", 0.05)
    server, devs = await server_and_devices(url, root, secrets, **kw)
    return Rig(server, devs[dev_id], device_key(secrets[dev_id]))


@pytest_asyncio.fixture
async def rig(mqtt_url: str, topic_root: str) -> AsyncIterator[Rig]:
    clock.reset()
    r = await _rig(
        mqtt_url, topic_root, community_id=COMMUNITY, pass_public_key=PASS_KEY.public_key()
    )
    yield r
    await r.dev.stop(clear_retained=True)
    await r.server.stop()
    await clear_retained(mqtt_url, topic_root, timeout=0.3)
    clock.reset()


def _add(version: int, person: str, valid_until: int | None = None) -> dict:
    c = {
        "version": version,
        "op": "add",
        "person_id": person,
        "embedding": embedding_to_b64(seeded_embedding(person)),
    }
    if valid_until is not None:
        c["valid_until"] = valid_until
    return c


def _remove(version: int, person: str) -> dict:
    return {"version": version, "op": "remove", "person_id": person}


# ---------------------------------------------------------------- door


async def test_open_relocks_and_reports_door_states(rig: Rig) -> None:
    out = await rig.cmd("open", {"reason": "face", "person_id": "p1"})
    assert out.ok and rig.dev.opened[0].person_id == "p1" and rig.dev.door_open
    states = [e.state for e in await rig.events(2)]
    assert states == ["opened", "closed"] and not rig.dev.door_open
    forced = await rig.dev.door_forced()
    assert (await rig.event_of("door_state")).id == forced["id"]


async def test_other_inputs_become_typed_events(rig: Rig) -> None:
    await rig.dev.enter_code("3-1201", "4321")
    await rig.dev.read_plate("粤B12345", direction="out")
    await rig.dev.call_room("1201")
    await rig.dev.fence_alarm("north-3", "cut")
    await rig.dev.door_held_open()
    got = await rig.events(5)
    assert [e.type for e in got] == [
        "code_entry",
        "plate_read",
        "intercom_call",
        "fence_alarm",
        "door_state",
    ]
    assert got[1].plate == "粤B12345" and got[3].alarm == "cut" and got[4].state == "held_open"
    assert [e.seq for e in got] == sorted(e.seq for e in got)


async def test_unsupported_and_config_and_reboot(mqtt_url: str, topic_root: str) -> None:
    r = await _rig(mqtt_url, topic_root, "fence-1", kind="fence")
    try:
        out = await r.cmd("open")
        assert (out.status, out.reason) == ("refused", "unsupported")
        out = await r.cmd("config", {"heartbeat_s": 60})
        assert out.ok and r.dev.cfg.heartbeat_s == 60
        await r.server.next_state(5)  # online
        assert (await r.cmd("reboot")).ok
        assert (await r.server.next_state(5)).state.status == "offline"
        assert (await r.server.next_state(5)).state.status == "online"
    finally:
        await r.dev.stop(clear_retained=True)
        await r.server.stop()


# ---------------------------------------------------------------- buffering


async def test_offline_buffering_and_idempotent_reupload(rig: Rig) -> None:
    await rig.server.next_state(5)
    rig.dev.go_offline()
    assert (await rig.server.next_state(5)).state.status == "offline"
    sent = [await rig.dev.swipe_card(str(i)) for i in range(3)]
    assert len(rig.dev.outbox) == 3
    with pytest.raises(TimeoutError):
        await rig.server.next_event(0.2)
    await rig.dev.go_online()
    await rig.dev.flush()
    got = await rig.events(3)
    assert [e.id for e in got] == [e["id"] for e in sent]  # same ids, same order
    # the device re-uploads after a lost PUBACK: same ids, no second effect
    rig.dev.outbox.extend(sent)
    rig.dev._kick.set()  # noqa: SLF001
    await rig.dev.flush()
    with pytest.raises(TimeoutError):
        await rig.server.next_event(0.3)
    assert rig.server.stats["duplicate"] == 3
    st = (await rig.server.next_state(5)).state
    assert st.status == "online"


async def test_offline_mid_publish_delivers_the_buffer_after_reconnect(rig: Rig) -> None:
    """The cable is pulled while an event is on its way (PUBACK never seen): after
    reconnect that event and the ones buffered meanwhile still go out, same ids."""
    await rig.server.next_state(5)
    real = rig.dev.link.publish_event
    cut = asyncio.Event()

    async def publish_then_cut(evt: dict) -> None:
        if cut.is_set():
            return await real(evt)
        cut.set()
        task = asyncio.ensure_future(real(evt))
        await asyncio.sleep(0)  # the PUBLISH has left; the PUBACK is still to come
        rig.dev.go_offline()
        return await task

    rig.dev.link.publish_event = publish_then_cut  # type: ignore[method-assign]
    first = await rig.dev.swipe_card("0")
    await asyncio.wait_for(cut.wait(), 5)
    assert (await rig.server.next_state(5)).state.status == "offline"
    sent = [first, *[await rig.dev.swipe_card(str(i)) for i in (1, 2)]]
    await rig.dev.go_online()
    await rig.dev.flush(5)
    got = await rig.events(3)
    assert [e.id for e in got] == [e["id"] for e in sent]  # each once, in order
    assert [e["id"] for e in rig.dev.sent] == [e["id"] for e in sent]
    assert not rig.dev.outbox
    with pytest.raises(TimeoutError):
        await rig.server.next_event(0.3)


# ---------------------------------------------------------------- library


def test_library_versions_order_and_atomicity() -> None:
    lib = FaceLibrary()

    def apply(args: dict) -> str | None:
        return lib.apply(_sealed(args), LIB_KEY, "lib-test")

    assert apply({"base_version": 0, "version": 2, "changes": [_add(1, "a"), _add(2, "b")]}) is None
    assert lib.version == 2 and len(lib) == 2
    # re-delivery of an overlapping batch is harmless; add then remove in one batch ends removed
    changes = [_add(2, "b"), _add(3, "c"), _remove(4, "c")]
    assert apply({"base_version": 1, "version": 4, "changes": changes}) is None
    assert lib.version == 4 and "c" not in lib and "b" in lib
    assert apply({"base_version": 9, "version": 10}) == "version_mismatch"
    no_embedding = {"version": 6, "op": "add", "person_id": "x"}
    bad = {"base_version": 4, "version": 5, "changes": [_remove(5, "a"), no_embedding]}
    assert apply(bad) == "malformed" and "a" in lib and lib.version == 4
    # A template in clear, one sealed to another terminal, or one moved to another person
    # never enters the library.
    clear = LibrarySyncArgs(base_version=4, version=5, changes=[_add(5, "m")])
    assert lib.apply(clear, LIB_KEY, "lib-test") == "unsealed"
    other = _sealed({"base_version": 4, "version": 5, "changes": [_add(5, "m")]}, device_id="x")
    assert lib.apply(other, LIB_KEY, "lib-test") == "malformed"
    moved = _sealed({"base_version": 4, "version": 5, "changes": [_add(5, "m")]}).model_dump()
    moved["changes"][0]["person_id"] = "n"
    assert lib.apply(LibrarySyncArgs(**moved), LIB_KEY, "lib-test") == "malformed"
    assert "m" not in lib and "n" not in lib and lib.version == 4
    assert apply({"base_version": 0, "version": 7, "full": True, "changes": [_add(7, "z")]}) is None
    assert len(lib) == 1 and lib.version == 7
    m = lib.match(seeded_embedding("z"), 0.4, now_ms())
    assert m.person_id == "z" and m.score > 0.99
    assert lib.match(seeded_embedding("stranger"), 0.4, now_ms()).person_id is None


async def test_local_match_and_catch_up_removal_on_reconnect(rig: Rig) -> None:
    st = (await rig.server.next_state(5)).state
    assert st.library_version == 0
    out = await rig.cmd(
        "library_sync",
        {"base_version": 0, "version": 2, "changes": [_add(1, "alice"), _add(2, "bob")]},
    )
    assert out.ok and out.ack.detail["library_version"] == 2
    await rig.dev.capture_face(seeded_embedding("alice"))
    e = await rig.event_of("face_capture")
    assert (e.person_id, e.mode, e.library_stale) == ("alice", "local", False)
    assert e.score > 0.99 and e.embedding is None

    # Offline: the server removes alice. On reconnect the device reports version 2 ...
    rig.dev.go_offline()
    assert (await rig.server.next_state(5)).state.status == "offline"
    await rig.dev.go_online()
    st = (await rig.server.next_state(5)).state
    assert (st.status, st.library_version) == ("online", 2)
    # ... a capture arriving now waits for the catch-up, which removes alice first
    capture = asyncio.create_task(rig.dev.capture_face(seeded_embedding("alice")))
    await asyncio.sleep(0.05)
    out = await rig.cmd(
        "library_sync",
        {"base_version": st.library_version, "version": 3, "changes": [_remove(3, "alice")]},
    )
    assert out.ok
    await capture
    e = await rig.event_of("face_capture")
    assert e.person_id is None and e.library_version == 3 and not e.library_stale


async def test_stale_library_falls_back_to_server_match(rig: Rig) -> None:
    await rig.cmd("library_sync", {"base_version": 0, "version": 1, "changes": [_add(1, "carol")]})
    rig.dev.go_offline()
    await rig.dev.capture_face(seeded_embedding("carol"))  # offline: matched, flagged stale
    await rig.dev.go_online()
    e = await rig.event_of("face_capture")
    assert e.person_id == "carol" and e.library_stale and e.embedding
    emb = embedding_of({"embedding": e.embedding})
    assert emb is not None and np.allclose(emb, seeded_embedding("carol"), atol=1e-6)


async def test_version_gap_is_refused_and_valid_until_is_honoured(rig: Rig) -> None:
    out = await rig.cmd("library_sync", {"base_version": 5, "version": 6, "changes": []})
    assert (out.status, out.reason, out.ack.detail["library_version"]) == (
        "refused",
        "version_mismatch",
        0,
    )
    until = now_ms() + 60_000
    assert (
        await rig.cmd(
            "library_sync", {"base_version": 0, "version": 1, "changes": [_add(1, "dave", until)]}
        )
    ).ok
    clock.advance(61)
    await rig.dev.capture_face(seeded_embedding("dave"))
    assert (await rig.event_of("face_capture")).person_id is None


async def test_server_match_mode_sends_embedding_and_image(rig: Rig) -> None:
    assert (await rig.cmd("config", {"match_mode": "server"})).ok
    await rig.dev.capture_face(seeded_embedding("erin"), image=b"\xff\xd8jpeg")
    e = await rig.event_of("face_capture")
    assert e.mode == "server" and e.embedding and e.image and e.person_id is None
    with pytest.raises(ValueError):
        await rig.dev.capture_face(None, image=b"x" * 200_000)  # over 256 KiB base64


# ---------------------------------------------------------------- passes


def _pass(key: Ed25519PrivateKey = PASS_KEY, **claims: object) -> str:
    now = int(clock.time())
    body = {
        "iss": COMMUNITY,
        "sub": "pass-1",
        "nbf": now - 10,
        "exp": now + 3600,
        "doors": ["gate-1"],
        "uses": 2,
        "kind": "visitor",
    }
    body.update(claims)
    return jwt.encode(body, key, algorithm="EdDSA")


async def test_pass_valid_opens_and_counts_uses(rig: Rig) -> None:
    evt, v = await rig.dev.scan_qr(_pass(plate="京A00001"))
    assert v and v.ok and evt["local_result"] == "accepted"
    assert rig.dev.opened[-1].pass_id == "pass-1"
    used = await rig.event_of("pass_used")
    assert (used.pass_id, used.uses, used.plate) == ("pass-1", 1, "京A00001")
    assert (await rig.dev.scan_qr(_pass()))[1].ok
    evt, v = await rig.dev.scan_qr(_pass())
    assert v.reason == "used_up" and evt["local_result"] == "rejected"
    assert len(rig.dev.opened) == 2


@pytest.mark.parametrize(
    "claims, key, reason",
    [
        ({"exp": -1}, PASS_KEY, "expired"),
        ({"nbf": 10**12}, PASS_KEY, "not_yet_valid"),
        ({}, Ed25519PrivateKey.generate(), "bad_signature"),  # another community's key
        ({"iss": "community-7"}, PASS_KEY, "wrong_community"),
        ({"doors": ["gate-9"]}, PASS_KEY, "wrong_door"),
        ({"doors": "gate-1"}, PASS_KEY, "bad_claims"),
    ],
)
async def test_pass_refusals(rig: Rig, claims: dict, key: Ed25519PrivateKey, reason: str) -> None:
    if claims.get("exp") == -1:
        claims = {"exp": int(clock.time()) - 60, "nbf": int(clock.time()) - 120}
    evt, v = await rig.dev.scan_qr(_pass(key, **claims))
    assert v is not None and not v.ok and v.reason == reason
    assert rig.dev.opened == []
    e = await rig.event_of("qr_scan")
    assert e.local_result == "rejected" and e.reason == reason


async def test_pass_revoked_by_command_and_wildcard_door(rig: Rig) -> None:
    token = _pass(sub="pass-9", doors=["*"])
    assert (await rig.dev.scan_qr(token))[1].ok
    out = await rig.cmd("revoke_pass", {"pass_ids": ["pass-9"], "until": now_ms() + 3_600_000})
    assert out.ok
    assert (await rig.dev.scan_qr(token))[1].reason == "revoked"
    assert (await rig.dev.scan_qr("not-a-jwt"))[1].reason == "bad_token"


# ---------------------------------------------------------------- CLI


async def test_cli_sends_events(mqtt_url: str, topic_root: str) -> None:
    server = MqttServerTransport(mqtt_url, root=topic_root)
    await server.start()
    try:
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        proc = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "device_bridge.simulator",
                "--device-id",
                "cli-1",
                "--secret",
                "s",
                "--kind",
                "barrier_gate",
                "--mqtt",
                mqtt_url,
                "--root",
                topic_root,
                "--script",
                "plate 粤B12345; card 77; status",
                "--exit-after",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr
        got = [await server.next_event(5) for _ in range(2)]
        assert [g.event.type for g in got] == ["plate_read", "card_swipe"]
        assert not got[0].authenticated  # no key lookup configured on this server
        assert '"sim": "status"' in proc.stdout
    finally:
        await server.stop()
        await clear_retained(mqtt_url, topic_root, timeout=0.3)
