"""Gate throughput and latency through the broker, to the signed ack and the access row.

    uv run python bench/gate_latency.py [--faces 10000] [--captures 200] [--gates 64]

Embedded default (SQLite file, in-process bus) unless DATABASE_URL / REDIS_URL are set:
then a fresh PostgreSQL database and a fresh Redis key prefix for the run ("server
stack"). The broker is MQTT_URL when set, else a private Mosquitto with
`set_tcp_nodelay true` (when the binary exists), else the embedded amqtt broker. The
first lines say which.

1. Faces. A central community holds `--faces` real enrollments: rows with encrypted
   embeddings, loaded into the gallery as the server loads them. Seven labelled people
   are enrolled from one photo each; the rest are noise rows (synthetic unit vectors: we
   hold no 10,000 photos). A simulated terminal in server-match mode sends the embedding
   of another photo of an enrolled person; the server searches, re-checks consent and the
   access policy, signs the open command, the terminal executes and acks, the server
   writes the access row. The clock stops when the row is written (the bus's
   access.event, published after it); "device received the command" is reported too.
   rank-1: the share of those captures that opened for the right resident.
2. Camera frames: the same with a 640 px JPEG instead of an embedding (the server also
   detects, aligns and embeds), after a warm-up.
3. Cards: `--gates` simulated gates in a separate process swipe `--swipes` cards each,
   as fast as their links allow; an event counts once its row is written (decision,
   signed open, device ack, row). `bridge_cpu_ms_per_event` is this process's CPU time
   per event (the bridge's cost, whatever the machine's load).

The last line is JSON: card_events_per_s, face_to_acked_open_p95_ms,
frame_to_acked_open_p95_ms, rank1, ...
"""

from __future__ import annotations

import sys
from pathlib import Path

# The repository, not bench/, first on the path: bench/face_engine.py would shadow the package.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import secrets  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import anxin  # noqa: E402, F401 - first: it sets the server's BLAS threads before numpy loads

# isort: split
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2) if values else float("nan")


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from asgi_lifespan import LifespanManager

    from anxin.channels import ACCESS_EVENT
    from anxin.settings import Settings
    from auth.permissions import Principal
    from bench._support import bench_database, start_broker, throwaway_secrets
    from bench._support.burst import gate_burst
    from bench._support.stages import stage_timer
    from boot.roles import build_app
    from device_bridge.service import BRIDGE
    from device_bridge.simulator.device import DeviceConfig, SimulatedDevice
    from domain.devices.service import register_device
    from domain.faces import consent
    from domain.faces.galleries import GALLERIES
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
    from tests import face_data

    logging.disable(logging.WARNING)
    engine = FaceEngine("insightface")
    people = {who: names for who, names in face_data.IDENTITIES.items()}
    enrolled = {
        who: engine.analyze_enrollment(face_data.photo_bytes(n[0])).embedding
        for who, n in people.items()
    }
    probes = [
        (who, engine.embed_probe(face_data.photo_bytes(n))[0])
        for who, names in people.items()
        for n in names[1:]
    ]
    probes = [(who, v) for who, v in probes if v is not None]
    frame = _camera_frame(face_data.photo_bytes("obama2"))

    broker, mqtt_url, broker_name = start_broker()
    redis_url = os.environ.get("REDIS_URL", "")
    prefix = f"anxin-bench-{secrets.token_hex(4)}:"
    tmp = Path(tempfile.mkdtemp(prefix="anxin-bench-gate-"))
    result: dict[str, Any] = {}
    try:
        async with bench_database(tmp) as db_url:
            settings = Settings(
                database_url=db_url,
                redis_url=redis_url,
                redis_prefix=prefix,
                data_dir=tmp,
                mqtt_url=mqtt_url,
                topic_root=prefix.rstrip(":"),
                **throwaway_secrets(),
            )
            stack = (
                ("postgres" if settings.uses_postgres else "sqlite")
                + ("+redis" if redis_url else "+in-process bus")
                + f" + {broker_name}"
            )
            print(f"stack: {stack}", flush=True)
            app = build_app(settings)
            async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
                rt = app.state.runtime
                city = await City.create(name="基准市")
                community = await Community.create(
                    city=city, name="基准小区", face_storage_policy=FaceStoragePolicy.CENTRAL
                )
                b = await Building.create(community=community, name="1栋")
                u = await Unit.create(building=b, community=community, name="1单元")
                room = await Room.create(unit=u, building=b, community=community, number="101")
                resident_of: dict[str, int] = {}
                for who, vec in enrolled.items():
                    r = await Resident.create(name=who)
                    resident_of[who] = r.id
                    await Membership.create(
                        resident=r,
                        room=room,
                        community=community,
                        role=MembershipRole.OWNER,
                        state=MembershipState.APPROVED,
                    )
                    for purpose in consent.required_purposes(FaceStoragePolicy.CENTRAL):
                        await consent.give(r.id, community.id, purpose, 1, ConsentGiver.SELF)
                    e = await FaceEnrollment.create(
                        resident_id=r.id,
                        community_id=community.id,
                        submitted_by_type="resident",
                        submitted_by_id=r.id,
                        method=EnrollmentMethod.PHOTO,
                        state=EnrollmentState.APPROVED,
                        storage_policy="central",
                        backend="insightface",
                    )
                    e.person_id = f"f{e.id}"
                    e.embedding_enc = encrypt_embeddings(rt.keyring, e, {"insightface": vec})
                    await e.save()
                await _noise_enrollments(rt, community.id, args.faces - len(enrolled))
                t0 = time.perf_counter()
                gallery = await rt.get(GALLERIES).gallery(community.id)
                load_s = time.perf_counter() - t0
                print(f"gallery: {len(gallery)} enrollments loaded from rows in {load_s:.1f} s")

                staff = await StaffAccount.create(username="bench", password_hash="x")
                await StaffRole.create(staff=staff, community=community, role=StaffRoleName.ADMIN)
                principal = Principal(
                    "staff", staff.id, staff=staff, roles={community.id: {StaffRoleName.ADMIN}}
                )

                async def gate(name: str) -> Any:
                    return await register_device(
                        principal,
                        rt.keyring,
                        community.id,
                        kind=DeviceKind.FACE_GATE,
                        name=name,
                        building_id=None,
                        unit_id=None,
                        place="",
                        methods=None,
                    )

                rows: list[tuple[float, dict[str, Any]]] = []
                row_seen = asyncio.Event()

                async def watch() -> None:
                    async for msg in rt.bus.subscribe(ACCESS_EVENT):
                        rows.append((time.perf_counter(), msg))
                        row_seen.set()

                watcher = asyncio.create_task(watch())
                await asyncio.sleep(0.2)  # the subscription is in place

                creds = await gate("bench face gate")
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

                async def one(**capture: Any) -> tuple[float | None, float, dict[str, Any]]:
                    """(ms until the door opened or None, ms until the row, the row)."""
                    n_open, n_rows = len(sim.opened), len(rows)
                    row_seen.clear()
                    wall0, t0 = time.time() * 1000, time.perf_counter()
                    await sim.capture_face(**capture)
                    while len(rows) <= n_rows:
                        await asyncio.wait_for(row_seen.wait(), 10)
                        row_seen.clear()
                    t_row, msg = rows[n_rows]
                    opened = sim.opened[n_open].ts - wall0 if len(sim.opened) > n_open else None
                    return opened, (t_row - t0) * 1000, msg

                face_cmd: list[float] = []
                face_row: list[float] = []
                right = tried = 0
                timing = stage_timer(rt.get(BRIDGE), "face_capture")
                stages = timing.__enter__()
                for i in range(args.warmup + args.captures):
                    who, vec = probes[i % len(probes)]
                    cmd_ms, row_ms, msg = await one(embedding=vec)
                    if i < args.warmup:
                        continue
                    hit = msg["result"] == "granted" and msg["resident_id"] == resident_of[who]
                    right += hit
                    tried += 1
                    if cmd_ms is not None and msg["result"] == "granted":
                        face_cmd.append(cmd_ms)
                        face_row.append(row_ms)
                timing.__exit__(None, None, None)
                frame_cmd: list[float] = []
                frame_row: list[float] = []
                for i in range(args.warmup + args.frames):
                    cmd_ms, row_ms, msg = await one(image=frame)
                    assert msg["result"] == "granted", msg
                    if i >= args.warmup and cmd_ms is not None:
                        frame_cmd.append(cmd_ms)
                        frame_row.append(row_ms)
                await sim.stop(clear_retained=True)
                watcher.cancel()

                # ---- cards from a bank of gates in another process
                resident = await Resident.get(id=resident_of["obama"])
                bank = []
                for g in range(args.gates):
                    c = await gate(f"bench card gate {g}")
                    card_no = f"B-{g}"
                    await AccessCard.create(community=community, resident=resident, card_no=card_no)
                    bank.append(
                        {
                            "device_id": c.device.device_uid,
                            "secret": c.secret,
                            "card_no": card_no,
                        }
                    )
                before = await AccessEvent.filter(method="card").count()
                card = await gate_burst(
                    rt.get(BRIDGE).mqtt_url,
                    settings.topic_root,
                    bank,
                    args.swipes,
                    tmp,
                    window=args.window,
                    broker_pid=broker.proc.pid if broker is not None and broker.proc else None,
                )
                handled = await AccessEvent.filter(method="card").count() - before
                granted = await AccessEvent.filter(method="card", result="granted").count()
                refused = (
                    await AccessEvent.filter(method="card")
                    .exclude(result="granted")
                    .values_list("reason", flat=True)
                )
                reasons: dict[str, int] = {}
                for reason in refused:
                    reasons[reason] = reasons.get(reason, 0) + 1
                result = {
                    "stack": stack,
                    "gallery_faces": len(gallery),
                    "captures": len(face_row),
                    "rank1": round(right / max(1, tried), 4),
                    "rank1_probes": tried,
                    "face_to_command_p50_ms": pct(face_cmd, 50),
                    "face_to_command_p95_ms": pct(face_cmd, 95),
                    "face_to_acked_open_p50_ms": pct(face_row, 50),
                    "face_to_acked_open_p95_ms": pct(face_row, 95),
                    "face_to_acked_open_p99_ms": pct(face_row, 99),
                    "face_stage_median_ms": stages.medians(),
                    "frames": len(frame_row),
                    "frame_to_command_p95_ms": pct(frame_cmd, 95),
                    "frame_to_acked_open_p50_ms": pct(frame_row, 50),
                    "frame_to_acked_open_p95_ms": pct(frame_row, 95),
                    "card_gates": args.gates,
                    "card_window": args.window,
                    "card_events": handled,
                    "card_granted": granted,
                    "card_refused": reasons,
                    # Only opens that completed count: decision, signed open, ack, row.
                    "card_events_per_s": round(granted / card["seconds"], 1),
                    "bridge_cpu_ms_per_event": round(card["cpu_s"] * 1000 / max(1, handled), 3),
                    "card_cpu_ms_per_event": card["cpu_ms_per_event"],
                    "load_average": round(os.getloadavg()[0], 2),
                }
    finally:
        if broker is not None:
            broker.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return result


async def _noise_enrollments(rt: Any, community_id: int, n: int) -> None:
    """`n` more people with approved, encrypted enrollments (synthetic embeddings)."""
    from domain.faces.store import encrypt_embeddings
    from models import EnrollmentMethod, EnrollmentState, FaceEnrollment, Resident

    rng = np.random.default_rng(7)
    base = 1_000_000
    for start in range(0, n, 1000):
        count = min(1000, n - start)
        vecs = rng.standard_normal((count, 512)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        await Resident.bulk_create(
            [Resident(id=base + start + i, name=f"噪声{start + i}") for i in range(count)]
        )
        rows = []
        for i in range(count):
            rid = base + start + i
            e = FaceEnrollment(
                id=rid,
                resident_id=rid,
                community_id=community_id,
                submitted_by_type="resident",
                submitted_by_id=rid,
                method=EnrollmentMethod.PHOTO,
                state=EnrollmentState.APPROVED,
                storage_policy="central",
                backend="insightface",
                person_id=f"f{rid}",
            )
            e.embedding_enc = encrypt_embeddings(rt.keyring, e, {"insightface": vecs[i]})
            rows.append(e)
        await FaceEnrollment.bulk_create(rows)


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
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    # A bridge serves many gates, and a gate sends its events one at a time (its outbox
    # waits for each PUBACK, which the bridge gives once the claim is written): the
    # events one bridge can batch are about as many as the gates sending at once.
    ap.add_argument("--gates", type=int, default=64)
    ap.add_argument("--swipes", type=int, default=60, help="card swipes per gate")
    ap.add_argument(
        "--window", type=int, default=4, help="a gate's events waiting for their door at most"
    )
    r = asyncio.run(main(ap.parse_args()))
    print(
        f"face embedding -> ack + row, {r['gallery_faces']} faces: p50 "
        f"{r['face_to_acked_open_p50_ms']} ms, p95 {r['face_to_acked_open_p95_ms']} ms "
        f"(device had the command: p95 {r['face_to_command_p95_ms']} ms); "
        f"rank-1 {r['rank1']:.1%} of {r['rank1_probes']} captures of enrolled people"
    )
    print(
        "one face event, median ms per stage: "
        + ", ".join(f"{k} {v}" for k, v in r["face_stage_median_ms"].items())
    )
    print(
        f"camera frame -> detect + embed + search -> ack + row: p50 "
        f"{r['frame_to_acked_open_p50_ms']} ms, p95 {r['frame_to_acked_open_p95_ms']} ms "
        f"({r['frames']} frames)"
    )
    print(
        f"card events (decision, signed open, ack, row) from {r['card_gates']} gates: "
        f"{r['card_granted']} of {r['card_events']} opened at {r['card_events_per_s']}/s; "
        f"bridge CPU "
        f"{r['bridge_cpu_ms_per_event']} ms/event; load average {r['load_average']}"
    )
    print(
        "CPU ms per card event, by process: "
        + ", ".join(f"{k} {v}" for k, v in r["card_cpu_ms_per_event"].items())
    )
    print(json.dumps(r))
