"""Visitor passes at the gate, and the remote-open round trip, through the broker.

    uv run python bench/passes.py [--passes 400] [--gates 64] [--opens 200]

Embedded default (SQLite file, in-process bus) unless DATABASE_URL / REDIS_URL are set:
then a fresh PostgreSQL database and Redis key prefix ("server stack"); the broker is
MQTT_URL when set, else a private Mosquitto with set_tcp_nodelay (when the binary
exists), else the embedded amqtt broker. The first line says which.

* verify: the server's read-only check of a pass for a gate (`check_at_gate`: EdDSA
  signature, claims: community, window, door; then the pass row: revoked, used up,
  expired) over `--passes` distinct passes, 64 gates asking at once, `--verify` checks.
  `verify_per_s` is the check as the server runs it: a token whose signature verified
  before with a key still accepted skips the signature (`tokens.VERIFIED`); the claims
  and the pass row are checked every time. Each pass is checked `verify_checks_per_pass`
  times, the first of them cold. `verify_cold_per_s` is the same run with that cache off
  (every signature verified); `signature_only_per_s` is the token part alone (no
  database, no cache).
* gate path: `--gates` simulated gates in another process scan every pass once, asking
  the server (online): claim, verify, the conditional use, the signed open command, the
  gate's signed ack, the access row with its visitor-arrived notification.
  `gate_pass_scans_per_s` counts scans whose row is written.
* remote open: POST /api/v1/doors/{id}/open over ASGI -> policy -> claim + command row ->
  signed open command -> broker -> the door (a simulator in its own process, as a device
  is another machine) -> ack -> outcome -> access-event row with its door-opened notice
  -> response. `remote_open_p95_ms`: each open starts once the previous one's notice was
  delivered (at most 20 opens a second), as a resident opens a door, without an
  Idempotency-Key; `remote_open_idempotent_p95_ms`: the same with a fresh
  Idempotency-Key each (the mini-program sends one: its record is written before the
  open and the answer stored after it); `remote_open_back_to_back_p95_ms`: each right
  after the previous answer, so it also shares the process with the delivery of the
  previous notice. The per-resident rate limit is lifted for the run.

The last line printed is one JSON object (verify_per_s, gate_pass_scans_per_s,
remote_open_p95_ms, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# The repository, not bench/, first on the path: bench/face_engine.py would shadow the package.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from device_bridge.service import BRIDGE  # noqa: E402


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def main(args: argparse.Namespace) -> dict[str, object]:
    import os
    import secrets
    import tempfile

    import httpx
    from asgi_lifespan import LifespanManager

    from anxin.clock import clock
    from anxin.settings import Settings
    from auth.permissions import Principal
    from auth.tokens import issue_token_pair
    from bench._support import bench_database, start_broker, throwaway_secrets
    from bench._support.burst import gate_burst
    from boot.roles import build_app
    from domain.devices.service import register_device
    from domain.doors import service as doors
    from domain.passes import service as passes
    from domain.passes.tokens import VERIFIED, check_token
    from models import (
        Building,
        City,
        Community,
        DeviceKind,
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

    logging.disable(logging.WARNING)
    broker, mqtt_url, broker_name = start_broker()
    doors.REMOTE_OPENS_PER_MINUTE = 10**9  # measuring latency, not the limiter
    passes.CREATE_LIMIT_PER_HOUR = 10**9  # one resident makes every pass of the run
    redis_url = os.environ.get("REDIS_URL", "")
    prefix = f"anxin-bench-{secrets.token_hex(4)}:"
    tmp = Path(tempfile.mkdtemp(prefix="anxin-bench-passes-"))
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
                community = await Community.create(city=city, name="基准小区")
                b = await Building.create(community=community, name="1栋")
                u = await Unit.create(building=b, community=community, name="1单元")
                room = await Room.create(unit=u, building=b, community=community, number="101")
                resident = await Resident.create(name="基准住户", openid="bench-openid")
                await Membership.create(
                    resident=resident,
                    room=room,
                    community=community,
                    role=MembershipRole.OWNER,
                    state=MembershipState.APPROVED,
                )
                staff = await StaffAccount.create(username="bench-admin", password_hash="x")
                await StaffRole.create(staff=staff, community=community, role=StaffRoleName.ADMIN)
                principal = Principal(
                    "staff", staff.id, staff=staff, roles={community.id: {"admin"}}
                )  # type: ignore[arg-type]
                creds = await register_device(
                    principal,
                    rt.keyring,
                    community.id,
                    kind=DeviceKind.FACE_GATE,
                    name="北门",
                    building_id=None,
                    unit_id=None,
                    place="",
                    methods=["card", "qr", "remote"],
                )
                gate = creds.device

                # The gates first: a pass names the doors that existed when it was made.
                bank: list[dict[str, Any]] = []
                for g in range(args.gates):
                    c = await register_device(
                        principal,
                        rt.keyring,
                        community.id,
                        kind=DeviceKind.FACE_GATE,
                        name=f"闸机{g}",
                        building_id=None,
                        unit_id=None,
                        place="",
                        methods=["qr"],
                    )
                    bank.append({"device_id": c.device.device_uid, "secret": c.secret})

                # ---- distinct passes; the gate path, then verification (64 gates at once)
                tokens = []
                for i in range(args.passes):
                    _, tok = await passes.create_pass(
                        rt, resident, passes.PassRequest(max_uses=20, visitor_name=f"访客{i}")
                    )
                    tokens.append(tok)
                token = tokens[0]
                key = await passes.pass_service(rt).keys.get(community.id)
                n = args.verify
                cache_size = VERIFIED.max_size
                VERIFIED.max_size = 0  # the token part alone, every signature verified
                start = time.perf_counter()
                for i in range(n):
                    assert check_token(
                        tokens[i % len(tokens)],
                        key.raw,
                        community.id,
                        gate.device_uid,
                        clock.time(),
                        community_gate=True,  # as check_at_gate says for a community gate
                    ).ok
                signature_s = time.perf_counter() - start

                async def checker(k: int, count: int) -> None:
                    for i in range(count):
                        decision, _ = await passes.check_at_gate(
                            rt, gate, tokens[(k * count + i) % len(tokens)]
                        )
                        assert decision.granted, decision

                async def verify_run() -> float:
                    VERIFIED.clear()
                    await asyncio.gather(*(checker(k, 2) for k in range(64)))  # warm-up
                    VERIFIED.clear()  # each token's first check verifies its signature
                    start = time.perf_counter()
                    await asyncio.gather(*(checker(k, n // 64) for k in range(64)))
                    return time.perf_counter() - start

                # Cold: the signature cache off, every check verifies its signature.
                verify_cold_s = await verify_run()
                # As served: each of the passes is checked n / passes times, the first time
                # with its signature, then from the cache (the pass row is read every time).
                VERIFIED.max_size = cache_size
                verify_s = await verify_run()
                n = 64 * (n // 64)

                for g, gate_cfg in enumerate(bank):
                    gate_cfg["tokens"] = tokens[g :: args.gates]
                VERIFIED.clear()  # the scans see each pass for the first time
                scans = await gate_burst(
                    rt.get(BRIDGE).mqtt_url,
                    settings.topic_root,
                    bank,
                    0,
                    tmp,
                    method="qr",
                    broker_pid=broker.proc.pid if broker is not None and broker.proc else None,
                )
                from models import AccessEvent

                qr_rows = await AccessEvent.filter(method="qr").count()
                qr_granted = await AccessEvent.filter(method="qr", result="granted").count()

                # The scans queued a visitor-arrived notification each: let the dispatcher
                # deliver them first, so the remote opens are timed on their own.
                from models import DeliveryState, NotificationDelivery, OutboxEvent, OutboxState

                async def notices_delivered(limit_s: float) -> None:
                    deadline = time.perf_counter() + limit_s
                    while time.perf_counter() < deadline:
                        busy = (
                            await OutboxEvent.filter(
                                state__in=[OutboxState.PENDING, OutboxState.PROCESSING]
                            ).exists()
                            or await NotificationDelivery.filter(
                                state__in=[DeliveryState.PENDING, DeliveryState.PROCESSING]
                            ).exists()
                        )
                        if not busy:
                            return
                        await asyncio.sleep(0.005)

                await notices_delivered(60)

                # ---- remote open round trip; the door is a device in a process of its own
                cfg = tmp / "door.json"
                cfg.write_text(
                    json.dumps(
                        {
                            "mqtt_url": rt.get(BRIDGE).mqtt_url,
                            "root": settings.topic_root,
                            "device_id": gate.device_uid,
                            "secret": creds.secret,
                        }
                    )
                )
                door = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bench._support.door",
                    str(cfg),
                    cwd=sys.path[0],  # the repository (set at the top)
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
                assert door.stdin and door.stdout
                line = await asyncio.wait_for(door.stdout.readline(), 60)
                assert line.strip() == b"ready", line
                await asyncio.sleep(1.0)  # its connect-time state messages are handled
                pair = await issue_token_pair(settings, "resident", resident.id)
                headers = {"Authorization": f"Bearer {pair.access_token}"}
                alone: list[float] = []
                idempotent: list[float] = []
                back_to_back: list[float] = []
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://bench"
                ) as client:

                    async def open_door(idempotent: bool = False) -> float:
                        h = headers
                        if idempotent:  # as the mini-program sends it: one fresh key per tap
                            h = {**headers, "Idempotency-Key": secrets.token_hex(16)}
                        t0 = time.perf_counter()
                        r = await client.post(f"/api/v1/doors/{gate.id}/open", headers=h)
                        assert r.status_code == 200, r.text
                        return (time.perf_counter() - t0) * 1000

                    for _ in range(20):  # warm-up: connections, caches
                        await open_door()
                    # As a resident opens a door: each open once the previous one's
                    # door-opened notice was delivered, at most 20 a second.
                    for _ in range(args.opens):
                        await notices_delivered(5)
                        await asyncio.sleep(0.05)
                        alone.append(await open_door())
                    # The same with an Idempotency-Key, as the mini-program sends one: its
                    # record is written before the open and its answer after.
                    for _ in range(args.opens):
                        await notices_delivered(5)
                        await asyncio.sleep(0.05)
                        idempotent.append(await open_door(idempotent=True))
                    # Back to back: each open right after the previous answer, so it also
                    # shares the process with the delivery of the previous one's notice.
                    await notices_delivered(5)
                    for _ in range(args.opens):
                        back_to_back.append(await open_door())
                door.stdin.write(b"stop\n")
                await door.stdin.drain()
                door_out = json.loads(await asyncio.wait_for(door.stdout.readline(), 30))
                await door.wait()
                assert door_out["opened"] == 3 * args.opens + 20, door_out
                latencies = alone
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    result: dict[str, object] = {
        "stack": stack,
        "verify_per_s": round(n / verify_s),
        "verify_cold_per_s": round(n / verify_cold_s),
        "verify_distinct_passes": len(tokens),
        "verify_checks_per_pass": round(n / len(tokens), 1),
        # Only scans that opened count: verify, use, signed open, ack, row + notification.
        "gate_pass_scans_per_s": round(qr_granted / scans["seconds"], 1),
        "gate_pass_scans": qr_rows,
        "gate_pass_granted": qr_granted,
        "gate_gates": args.gates,
        "bridge_cpu_ms_per_scan": round(scans["cpu_s"] * 1000 / max(1, qr_rows), 3),
        "scan_cpu_ms_by_process": scans["cpu_ms_per_event"],
        "signature_only_per_s": round(n / signature_s),  # cold: no signature cache
        "token_chars": len(token),
        "remote_open_p50_ms": round(pct(latencies, 50), 2),
        "remote_open_p95_ms": round(pct(latencies, 95), 2),
        "remote_open_p99_ms": round(pct(latencies, 99), 2),
        "remote_open_mean_ms": round(statistics.fmean(latencies), 2),
        "remote_opens": len(latencies),
        "remote_open_idempotent_p50_ms": round(pct(idempotent, 50), 2),
        "remote_open_idempotent_p95_ms": round(pct(idempotent, 95), 2),
        "remote_open_back_to_back_p50_ms": round(pct(back_to_back, 50), 2),
        "remote_open_back_to_back_p95_ms": round(pct(back_to_back, 95), 2),
        "door_cpu_ms_per_open": round(door_out["cpu_s"] * 1000 / door_out["opened"], 3),
        "load_average": round(os.getloadavg()[0], 2),
    }
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verify", type=int, default=6400, help="token checks to time")
    parser.add_argument("--passes", type=int, default=400, help="distinct passes")
    # Many gates: each sends one event at a time, so the gates sending at once are what
    # one bridge process can batch (bench/gate_latency.py says the same of cards).
    parser.add_argument("--gates", type=int, default=64, help="gates scanning them")
    parser.add_argument("--opens", type=int, default=200, help="remote opens to time, per series")
    res = asyncio.run(main(parser.parse_args()))
    print(
        f"pass verification (signature + claims + pass row, {res['verify_distinct_passes']} "
        f"passes, 64 gates at once): {res['verify_per_s']:,}/s "
        f"(each pass checked {res['verify_checks_per_pass']} times, signatures remembered); "
        f"cold, every signature verified: {res['verify_cold_per_s']:,}/s"
    )
    print(
        f"gate path (claim, verify, use, signed open, ack, row + notification) from "
        f"{res['gate_gates']} gates: {res['gate_pass_granted']} of {res['gate_pass_scans']} "
        f"scans opened at "
        f"{res['gate_pass_scans_per_s']}/s, bridge CPU {res['bridge_cpu_ms_per_scan']} ms/scan"
    )
    print(
        "CPU ms per scan, by process: "
        + ", ".join(f"{k} {v}" for k, v in res["scan_cpu_ms_by_process"].items())  # type: ignore[attr-defined]
    )
    print(f"token alone (signature + claims, no database):    {res['signature_only_per_s']:,}/s")
    print(
        f"remote open, each once the previous one's notice was delivered: "
        f"p50 {res['remote_open_p50_ms']} ms, p95 {res['remote_open_p95_ms']} ms, "
        f"p99 {res['remote_open_p99_ms']} ms ({res['remote_opens']} opens)"
    )
    print(
        f"remote open with an Idempotency-Key (as the mini-program sends): "
        f"p50 {res['remote_open_idempotent_p50_ms']} ms, "
        f"p95 {res['remote_open_idempotent_p95_ms']} ms"
    )
    print(
        f"remote open, back to back (sharing the process with the previous notice): "
        f"p50 {res['remote_open_back_to_back_p50_ms']} ms, "
        f"p95 {res['remote_open_back_to_back_p95_ms']} ms"
    )
    print(json.dumps(res))
