"""Gate latency through the broker: face capture -> open command, and card events per second.

Runs the whole service (SQLite, in-process bus) against a private tuned Mosquitto when
the `mosquitto` binary exists (else MQTT_URL, else the embedded amqtt broker), with a
central community holding 10,000 enrolled faces (synthetic unit vectors plus one real
enrollment). A simulated terminal in server-match mode sends the embedding of a
*different* photo of the enrolled person; the server searches the gallery, re-checks the
access policy and consent, and sends the signed open command; the time is taken when the
terminal executes it. The same is then timed for a terminal that sends a camera frame
(JPEG, 640 px) instead, so the server also detects, aligns and embeds. Then a burst of
card swipes measures events handled per second.

    uv run python bench/gate_latency.py [--faces 10000] [--captures 200] [--cards 1000]

The last line is JSON: face_to_open_p50/p95/p99_ms, face_image_to_open_p50/p95_ms,
card_events_per_s, ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from device_bridge.service import BRIDGE
from domain.faces.galleries import GALLERIES

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


async def main(args: argparse.Namespace) -> dict[str, object]:
    from _support import bench_settings, start_broker
    from asgi_lifespan import LifespanManager

    from auth.permissions import Principal
    from boot.roles import build_app
    from device_bridge.simulator.device import DeviceConfig, SimulatedDevice
    from domain.devices.service import register_device
    from domain.faces import consent
    from domain.faces.store import encrypt_embeddings
    from face_engine import FaceEngine
    from models import (
        AccessCard,
        AccessEvent,
        Building,
        City,
        Community,
        ConsentGiver,
        DeviceKind,
        EnrollmentMethod,
        EnrollmentState,
        FaceEnrollment,
        FaceStoragePolicy,
        Membership,
        MembershipRole,
        MembershipState,
        Resident,
        Room,
        StaffAccount,
        StaffRole,
        StaffRoleName,
        Unit,
    )
    from tests.face_data import photo_bytes

    logging.disable(logging.WARNING)
    engine = FaceEngine("insightface")
    enrolled = engine.analyze_enrollment(photo_bytes("obama")).embedding
    probe = engine.embed_probe(photo_bytes("obama2"))[0]  # another photo of him
    # The same photo as a camera frame for a terminal that sends images: the server then
    # detects, aligns and embeds too (JPEG, downscaled like a gate camera's snapshot).
    frame = _camera_frame(photo_bytes("obama2"))

    broker, mqtt_url, broker_name = start_broker()
    settings, tmp = bench_settings("gate", mqtt_url)
    app = build_app(settings)
    try:
        async with LifespanManager(app, startup_timeout=60):
            rt = app.state.runtime
            city = await City.create(name="基准市")
            community = await Community.create(
                city=city, name="基准小区", face_storage_policy=FaceStoragePolicy.CENTRAL
            )
            b = await Building.create(community=community, name="1栋")
            u = await Unit.create(building=b, community=community, name="1单元")
            room = await Room.create(unit=u, building=b, community=community, number="101")
            resident = await Resident.create(name="基准住户")
            await Membership.create(
                resident=resident,
                room=room,
                community=community,
                role=MembershipRole.OWNER,
                state=MembershipState.APPROVED,
            )
            for purpose in consent.required_purposes(FaceStoragePolicy.CENTRAL):
                await consent.give(resident.id, community.id, purpose, 1, ConsentGiver.SELF)
            e = await FaceEnrollment.create(
                resident_id=resident.id,
                community_id=community.id,
                submitted_by_type="resident",
                submitted_by_id=resident.id,
                method=EnrollmentMethod.PHOTO,
                state=EnrollmentState.APPROVED,
                storage_policy="central",
                backend="insightface",
            )
            e.person_id = f"f{e.id}"
            e.embedding_enc = encrypt_embeddings(rt.keyring, e, {"insightface": enrolled})
            await e.save()
            gallery = await rt.get(GALLERIES).gallery(community.id)
            rng = np.random.default_rng(7)
            synth = rng.standard_normal((args.faces - 1, 512)).astype(np.float32)
            synth /= np.linalg.norm(synth, axis=1, keepdims=True)
            for i, vec in enumerate(synth):
                gallery.add(f"s{i}", vec)
            await AccessCard.create(community=community, resident=resident, card_no="B-1")

            staff = await StaffAccount.create(username="bench", password_hash="x")
            await StaffRole.create(staff=staff, community=community, role=StaffRoleName.ADMIN)
            principal = Principal(
                "staff", staff.id, staff=staff, roles={community.id: {StaffRoleName.ADMIN}}
            )
            creds = await register_device(
                principal,
                rt.keyring,
                community.id,
                kind=DeviceKind.FACE_GATE,
                name="bench gate",
                building_id=None,
                unit_id=None,
                place="",
                methods=None,
            )
            sim = SimulatedDevice(
                DeviceConfig(
                    device_id=creds.device.device_uid,
                    secret=creds.secret,
                    kind="face_gate",
                    root=settings.topic_root,
                    match_mode="server",
                    relock_s=0.05,
                ),
                mqtt_url=rt.get(BRIDGE).mqtt_url,
            )
            await sim.start()
            await asyncio.wait_for(sim.library_synced.wait(), 10)

            lat: list[float] = []
            for i in range(args.warmup + args.captures):
                t0 = time.perf_counter()
                await sim.capture_face(embedding=probe)
                await sim.wait_opened(i + 1, timeout=10)
                if i >= args.warmup:
                    lat.append((time.perf_counter() - t0) * 1000)
            image_lat: list[float] = []
            opened = len(sim.opened)
            for i in range(args.image_captures):
                t0 = time.perf_counter()
                await sim.capture_face(image=frame)
                await sim.wait_opened(opened + i + 1, timeout=10)
                image_lat.append((time.perf_counter() - t0) * 1000)
            # Keep the door open during the burst: a real queue at a gate is one long
            # opening, not 1,000 door_state open/close event pairs.
            sim.cfg.relock_s = 60.0
            events_before = await AccessEvent.filter(method="card").count()
            t0 = time.perf_counter()
            for _ in range(args.cards):
                await sim.swipe_card("B-1")
            while await AccessEvent.filter(method="card").count() < events_before + args.cards:
                await asyncio.sleep(0.02)
                if time.perf_counter() - t0 > 60:
                    break
            card_s = time.perf_counter() - t0
            handled = await AccessEvent.filter(method="card").count() - events_before
            await sim.stop(clear_retained=True)
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    p = np.percentile(lat, [50, 95, 99])
    return {
        "broker": broker_name,
        "gallery_faces": len(gallery),
        "captures": len(lat),
        "face_to_open_p50_ms": round(float(p[0]), 2),
        "face_to_open_p95_ms": round(float(p[1]), 2),
        "face_to_open_p99_ms": round(float(p[2]), 2),
        "face_image_to_open_p50_ms": round(float(np.percentile(image_lat, 50)), 2),
        "face_image_to_open_p95_ms": round(float(np.percentile(image_lat, 95)), 2),
        "card_events": handled,
        "card_events_per_s": round(handled / card_s, 1),
        "target_p95_ms": 300,
        "target_card_events_per_s": 200,
    }


def _camera_frame(photo: bytes, long_side: int = 640) -> bytes:
    import cv2

    img = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    scale = long_side / max(img.shape[:2])
    if scale < 1:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=int, default=10_000)
    ap.add_argument("--captures", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--cards", type=int, default=1000)
    ap.add_argument("--image-captures", type=int, default=40)
    result = asyncio.run(main(ap.parse_args()))
    print(
        f"face capture -> open, {result['gallery_faces']} faces, {result['broker']}: "
        f"p50 {result['face_to_open_p50_ms']} ms, p95 {result['face_to_open_p95_ms']} ms, "
        f"p99 {result['face_to_open_p99_ms']} ms"
    )
    print(
        f"camera frame -> detect + embed + search -> open: p50 "
        f"{result['face_image_to_open_p50_ms']} ms, p95 {result['face_image_to_open_p95_ms']} ms"
    )
    print(f"card events: {result['card_events']} at {result['card_events_per_s']}/s")
    print(json.dumps(result))
