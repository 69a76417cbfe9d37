"""The device side fuzzed: generated payloads on every topic the bridge reads (evt, ack,
state, and topics it does not know) and every HTTP-push route (cdata, devicecmd,
getrequest): wrong types, huge fields, bad and missing signatures, replays, unknown
devices. Properties, for every message:

- nothing raises out of the transport and no request answers 500;
- no door opens, unless the message is a genuine, fresh, correctly signed card swipe of
  a known card from the device itself with an id never used before (the oracle below);
  a replay of one that opened never opens again;
- a message refused is counted exactly once, and the log carries at most one line per
  kind of refusal (a flood cannot flood the log);
- afterwards the bridge still serves: a real terminal's card swipe opens the door.

Hypothesis drives the generation with fixed seeds and bounded example counts (CI time);
the messages go straight into the transports' entry points (what the broker and the HTTP
routes hand them), on the embedded default (the backend does not matter here).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_bridge.http_push import HttpDeviceLink
from device_bridge.protocol import ProtocolError, Topics, new_id, now_ms, parse_event
from device_bridge.service import BRIDGE, DeviceBridge
from device_bridge.signing import device_key, sign, verify
from device_bridge.transport import NotConnected
from models import AccessCard, DeviceCommand, StaffRoleName
from tests.devices import register_device, simulator
from tests.helpers import approved_resident, make_staff, make_world, staff_headers
from tests.stack import Stack

pytestmark = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)

FUZZ = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
CARD = "FZ-CARD-1"
TYPES = ["card_swipe", "face_capture", "qr_scan", "code_entry", "plate_read", "intercom_call"]
TYPES += ["door_state", "fence_alarm", "pass_used", "no_such_type"]

# Values of the wrong type or size for any field.
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.text(min_size=5_000, max_size=5_000, alphabet="x"),
    st.lists(st.integers(), max_size=5),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
FIELDS = ["v", "id", "device_id", "ts", "seq", "type", "door", "card_no", "mode", "embedding"]
FIELDS += ["image", "token", "buffered", "room", "state", "sig", "extra_field"]


class Harness:
    """Runs coroutines on the test's loop from hypothesis's thread; knows the oracle."""

    def __init__(self, stack: Stack, gate: dict[str, Any], loop: asyncio.AbstractEventLoop):
        self.stack = stack
        self.gate = gate
        self.uid = gate["device_uid"]
        self.key = device_key(gate["secret"])
        self.loop = loop
        self.bridge: DeviceBridge = stack.runtime.get(BRIDGE)
        self.topics = Topics(stack.settings.topic_root)
        self.used_ids: set[str] = set()
        self.replayable: list[dict[str, Any]] = []

    def run(self, coro: Any) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout=30)

    def rejections(self) -> int:
        b = self.bridge
        assert b.transport is not None
        return sum(
            sum(r.counts.values()) for r in (b.reject, b.transport.reject, b.http_push.reject)
        )

    async def idle(self) -> None:
        """Until the bridge has handled everything it was given."""
        b = self.bridge
        assert b.transport is not None
        for _ in range(3000):
            queued = b.transport._events.qsize() + b.http_push._events.qsize()  # noqa: SLF001
            if not queued and not b._inflight:  # noqa: SLF001
                return
            await asyncio.sleep(0.005)
        raise AssertionError("the bridge did not settle")

    async def opens(self) -> int:
        return await DeviceCommand.filter(device_id=self.gate["id"], op="open").count()

    def may_open(self, obj: Any) -> bool:
        """The oracle: only a genuine fresh card swipe of the known card, new id."""
        if not isinstance(obj, dict) or obj.get("device_id") != self.uid:
            return False
        if not verify(obj, self.key):
            return False
        try:
            evt = parse_event(obj)
        except ProtocolError:
            return False
        return (
            evt.type == "card_swipe"
            and evt.card_no == CARD
            and evt.id not in self.used_ids
            and not getattr(evt, "buffered", False)
            and abs(now_ms() - evt.ts) < 30_000
        )

    async def deliver_mqtt(self, topic: str, payload: bytes) -> None:
        assert self.bridge.transport is not None
        await self.bridge.transport._on_message(topic, payload, False)  # noqa: SLF001

    async def check(self, send: Callable[[], Any], obj: Any, *more: Any) -> None:
        """Deliver one message (an HTTP-push upload may carry several events: `more`);
        check opens and counting."""
        objs = [obj, *more]
        allowed = len(
            {o["id"] for o in objs if self.may_open(o)}  # a repeated id opens once
        )
        before_opens, before_rej = await self.opens(), self.rejections()
        await send()
        await self.idle()
        opened = await self.opens() - before_opens
        refused = self.rejections() - before_rej
        assert opened <= allowed, (objs, opened)
        assert refused <= len(objs), (objs, refused)  # never counted twice
        for o in objs:
            if isinstance(o, dict) and isinstance(o.get("id"), str):
                if opened and self.may_open(o):
                    self.replayable.append(o)
                if verify(o, self.key):
                    self.used_ids.add(o["id"])


def _event(uid: str, type_: str = "card_swipe", **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "v": 1,
        "id": new_id(),
        "device_id": uid,
        "ts": now_ms(),
        "seq": 1,
        "type": type_,
        "door": 1,
    }
    if type_ == "card_swipe":
        base["card_no"] = CARD
    return {**base, **extra}


@st.composite
def mutated_event(draw: st.DrawFn, uid: str, key: bytes) -> dict[str, Any]:
    """A plausible event, then: fields changed to junk, removed or added; signed with the
    device key, a wrong key, not at all, or with a mangled signature."""
    evt = _event(uid, draw(st.sampled_from(TYPES)))
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(FIELDS))
        if draw(st.booleans()):
            evt[name] = draw(junk)
        else:
            evt.pop(name, None)
    if draw(st.booleans()):
        evt["ts"] = draw(st.sampled_from([now_ms() - 3_600_000, now_ms() + 3_600_000, 0]))
    how = draw(st.sampled_from(["device", "device", "wrong", "none", "mangled"]))
    try:
        if how == "device":
            evt = sign(evt, key)
        elif how == "wrong":
            evt = sign(evt, secrets.token_bytes(32))
        elif how == "mangled":
            evt = sign(evt, key)
            evt["sig"] = evt["sig"][::-1]
    except (TypeError, ValueError):
        pass  # unserialisable junk: sent unsigned
    return evt


def _bytes(obj: Any) -> bytes:
    try:
        return json.dumps(obj).encode()
    except (TypeError, ValueError):
        return repr(obj).encode()


@pytest.fixture
async def harness(stack: Stack) -> Harness:
    world = await make_world()
    admin_h = await staff_headers(stack, await make_staff(world.community, StaffRoleName.ADMIN))
    resident = await approved_resident(stack, world.rooms[0], admin_h)
    me = (await resident.get("/api/v1/me")).json()
    await AccessCard.create(community=world.community, resident_id=me["id"], card_no=CARD)
    gate = await register_device(stack, world.community.id, admin_h, kind="face_gate")
    return Harness(stack, gate, asyncio.get_running_loop())


async def _still_serves(stack: Stack, h: Harness) -> None:
    before = await h.opens()
    async with simulator(stack, h.gate) as sim:
        await sim.swipe_card(CARD)
        await sim.wait_opened(timeout=10)
    assert await h.opens() == before + 1


async def test_events_on_the_evt_topic(stack: Stack, harness: Harness) -> None:
    h = harness

    @FUZZ
    @given(evt=mutated_event(h.uid, h.key), on_topic_of=st.sampled_from(["self", "other"]))
    def fuzz(evt: dict[str, Any], on_topic_of: str) -> None:
        uid = h.uid if on_topic_of == "self" else f"ax-nobody-{secrets.token_hex(2)}"
        h.run(h.check(lambda: h.deliver_mqtt(h.topics.evt(uid), _bytes(evt)), evt))

    async with simulator(stack, h.gate):  # the terminal is there: opens are acked
        await asyncio.to_thread(fuzz)
    await _still_serves(stack, h)


async def test_replays_and_unknown_devices_never_open(stack: Stack, harness: Harness) -> None:
    """A genuine swipe opens once; its replays (same bytes, later, via MQTT or HTTP push,
    re-signed copies for another device) never open again."""
    h = harness
    genuine = sign(_event(h.uid), h.key)
    await h.check(lambda: h.deliver_mqtt(h.topics.evt(h.uid), _bytes(genuine)), genuine)
    assert h.replayable == [genuine]
    link = HttpDeviceLink(str(stack.client.base_url), h.uid, h.gate["secret"], client=stack.client)

    async def via_http(obj: dict[str, Any]) -> None:
        with contextlib.suppress(NotConnected):  # 503 retry or 403: never a door
            await link._req("POST", "cdata", body=_bytes(obj), params={"table": "ANXIN"})  # noqa: SLF001

    @FUZZ
    @given(
        path=st.sampled_from(["mqtt", "http"]),
        unknown=st.booleans(),
        junk_key=st.binary(min_size=32, max_size=32),
    )
    def fuzz(path: str, unknown: bool, junk_key: bytes) -> None:
        obj = dict(genuine)
        topic_uid = h.uid
        if unknown:  # the same swipe claimed by a device that does not exist
            topic_uid = obj["device_id"] = f"ax-ghost-{secrets.token_hex(3)}"
            obj = sign(obj, junk_key)
        if path == "mqtt":
            h.run(h.check(lambda: h.deliver_mqtt(h.topics.evt(topic_uid), _bytes(obj)), obj))
        else:
            h.run(h.check(lambda: via_http(obj), obj))

    async with simulator(stack, h.gate):  # the terminal is there: opens are acked
        await asyncio.to_thread(fuzz)
    await _still_serves(stack, h)


async def test_acks_states_and_unknown_topics(stack: Stack, harness: Harness) -> None:
    h = harness
    channels = ["ack", "state", "evt", "cmd", "nope"]

    @FUZZ
    @given(
        channel=st.sampled_from(channels),
        body=st.one_of(
            mutated_event(h.uid, h.key),
            st.binary(max_size=300),
            st.dictionaries(st.text(max_size=8), junk, max_size=6),
        ),
        topic_noise=st.text(alphabet="abc/+#$ ", max_size=12),
    )
    def fuzz(channel: str, body: Any, topic_noise: str) -> None:
        payload = body if isinstance(body, bytes) else _bytes(body)
        topic = h.topics.device(h.uid, channel)  # type: ignore[arg-type]
        if topic_noise:
            topic = f"{topic}/{topic_noise}" if "/" in topic_noise else topic_noise
        h.run(h.check(lambda: h.deliver_mqtt(topic, payload), body))

    async with simulator(stack, h.gate):  # the terminal is there: opens are acked
        await asyncio.to_thread(fuzz)
    await _still_serves(stack, h)


async def test_http_push_routes(stack: Stack, harness: Harness) -> None:
    """Signed and unsigned requests on every HTTP-push route: never a 500, never an open."""
    h = harness
    link = HttpDeviceLink(str(stack.client.base_url), h.uid, h.gate["secret"], client=stack.client)
    # A signed long poll with nothing queued waits this long (20 s in service).
    h.bridge.http_push.poll_wait_s, poll_wait_s = 0.02, h.bridge.http_push.poll_wait_s

    @FUZZ
    @given(
        route=st.sampled_from(["cdata", "devicecmd", "getrequest", "cdata?get"]),
        signed=st.booleans(),
        body=st.one_of(
            mutated_event(h.uid, h.key).map(_bytes),
            st.lists(mutated_event(h.uid, h.key).map(_bytes), max_size=4).map(b"\n".join),
            st.binary(max_size=500),
        ),
        sn=st.sampled_from(["self", "ghost", "junk"]),
    )
    def fuzz(route: str, signed: bool, body: bytes, sn: str) -> None:
        serial = {"self": h.uid, "ghost": "ax-ghost", "junk": "x" * 300}[sn]

        async def send() -> None:
            name, _, _ = route.partition("?")
            method = "GET" if route in ("getrequest", "cdata?get") else "POST"
            params = {"SN": serial, **({"table": "ANXIN"} if route == "cdata" else {})}
            headers = link._headers(f"{link.prefix}/{name}") if signed else {}  # noqa: SLF001
            r = await stack.client.request(
                method,
                f"{link.prefix}/{name}",
                params=params,
                content=body if method == "POST" else None,
                headers=headers,
                timeout=15,
            )
            assert r.status_code < 500 or r.status_code == 503, (route, r.status_code, r.text)

        objs: list[Any] = []
        for line in [ln for ln in body.split(b"\n") if ln.strip()] or [body]:
            try:
                objs.append(json.loads(line))
            except ValueError:
                objs.append(None)  # an upload's events are one per line (http_push.py)
        if not (signed and sn == "self"):
            objs = [None]
        h.run(h.check(send, *objs))

    try:
        async with simulator(stack, h.gate):  # the terminal is there: opens are acked
            await asyncio.to_thread(fuzz)
    finally:
        h.bridge.http_push.poll_wait_s = poll_wait_s
    await _still_serves(stack, h)


async def test_a_refusal_is_counted_and_logged_once(
    stack: Stack, harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """One bad message: one count, one log line; a flood of the same kind: still one line
    (then a summary with the count, at most once a minute)."""
    h = harness
    assert h.bridge.transport is not None
    reject = h.bridge.transport.reject
    reject._logged_at.clear()  # noqa: SLF001 - start this kind's log window now
    bad = sign(_event(h.uid), b"k" * 32)
    with caplog.at_level(logging.WARNING):
        before = reject.counts["bad_signature"]
        await h.deliver_mqtt(h.topics.evt(h.uid), _bytes(bad))
        assert reject.counts["bad_signature"] == before + 1
        lines = [r for r in caplog.records if "bad_signature" in r.getMessage()]
        assert len(lines) == 1
        for _ in range(200):
            await h.deliver_mqtt(h.topics.evt(h.uid), _bytes(sign(_event(h.uid), b"k" * 32)))
        assert reject.counts["bad_signature"] == before + 201
        lines = [r for r in caplog.records if "bad_signature" in r.getMessage()]
        assert len(lines) == 1
