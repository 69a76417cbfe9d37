"""Pass verification throughput and remote-open round trip through the broker.

    uv run python bench/passes.py [--verify N] [--opens N]

* verify: the server's whole check of a pass token for a gate (`check_at_gate`, what an
  online gate's qr_scan costs before the use is taken): EdDSA signature, claims
  (community, window, door), then the pass row on SQLite (revoked, used up, expired).
  `verify_per_s` is that; `signature_only_per_s` is the token part alone (no database).
* remote open: POST /api/v1/doors/{id}/open over ASGI -> policy -> signed open command ->
  broker -> simulator -> ack -> access-event row -> response. The broker is MQTT_URL when
  set, else a private Mosquitto tuned with set_tcp_nodelay (when the binary exists), else
  the embedded amqtt broker. The per-resident rate limit is lifted for the run.

The last line printed is one JSON object (verify_per_s, signature_only_per_s,
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

from device_bridge.service import BRIDGE

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def main(args: argparse.Namespace) -> dict[str, object]:
    import httpx
    from _support import bench_settings, start_broker
    from asgi_lifespan import LifespanManager

    from anxin.clock import clock
    from auth.permissions import Principal
    from auth.tokens import issue_token_pair
    from boot.roles import build_app
    from device_bridge.simulator.device import DeviceConfig, SimulatedDevice
    from domain.devices.service import register_device
    from domain.doors import service as doors
    from domain.passes import service as passes
    from domain.passes.tokens import check_token
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
    settings, tmp = bench_settings("passes", mqtt_url)
    doors.REMOTE_OPENS_PER_MINUTE = 10**9  # measuring latency, not the limiter
    app = build_app(settings)
    try:
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
            principal = Principal("staff", staff.id, staff=staff, roles={community.id: {"admin"}})  # type: ignore[arg-type]
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

            # ---- verification
            p, token = await passes.create_pass(
                rt, resident, passes.PassRequest(max_uses=20, visitor_name="基准")
            )
            key = await passes.pass_service(rt).keys.get(community.id)
            n = args.verify
            start = time.perf_counter()
            for _ in range(n):
                assert check_token(
                    token, key.public, community.id, gate.device_uid, clock.time()
                ).ok
            signature_s = time.perf_counter() - start
            for _ in range(100):  # warm-up: connection, statement paths
                await passes.check_at_gate(rt, gate, token)
            start = time.perf_counter()
            for _ in range(n):
                decision, _ = await passes.check_at_gate(rt, gate, token)
                assert decision.granted
            verify_s = time.perf_counter() - start

            # ---- remote open round trip
            sim = SimulatedDevice(
                DeviceConfig(
                    device_id=gate.device_uid,
                    secret=creds.secret,
                    kind="face_gate",
                    root=settings.topic_root,
                ),
                mqtt_url=rt.get(BRIDGE).mqtt_url,
            )
            await sim.start()
            pair = await issue_token_pair(settings, "resident", resident.id)
            headers = {"Authorization": f"Bearer {pair.access_token}"}
            latencies: list[float] = []
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                for i in range(args.opens + 20):
                    t0 = time.perf_counter()
                    r = await client.post(f"/api/v1/doors/{gate.id}/open", headers=headers)
                    elapsed = (time.perf_counter() - t0) * 1000
                    assert r.status_code == 200, r.text
                    if i >= 20:  # warm-up: connections, caches
                        latencies.append(elapsed)
            await sim.stop(clear_retained=True)
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    result: dict[str, object] = {
        "verify_per_s": round(n / verify_s),
        "signature_only_per_s": round(n / signature_s),
        "token_chars": len(token),
        "remote_open_p50_ms": round(pct(latencies, 50), 2),
        "remote_open_p95_ms": round(pct(latencies, 95), 2),
        "remote_open_p99_ms": round(pct(latencies, 99), 2),
        "remote_open_mean_ms": round(statistics.fmean(latencies), 2),
        "remote_opens": len(latencies),
        "broker": broker_name,
        "database": "sqlite",
    }
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verify", type=int, default=5000, help="token checks to time")
    parser.add_argument("--opens", type=int, default=300, help="remote opens to time")
    res = asyncio.run(main(parser.parse_args()))
    print(f"pass verification (signature + claims + pass row): {res['verify_per_s']:,}/s")
    print(f"token alone (signature + claims, no database):    {res['signature_only_per_s']:,}/s")
    print(
        f"remote open via {res['broker']}: p50 {res['remote_open_p50_ms']} ms, "
        f"p95 {res['remote_open_p95_ms']} ms, p99 {res['remote_open_p99_ms']} ms "
        f"({res['remote_opens']} opens)"
    )
    print(json.dumps(res))
