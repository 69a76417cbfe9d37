"""Video: event -> stored snapshot, ticket -> first live frame, CPU per live viewer.

Runs the whole service (SQLite, in-process bus, embedded broker) with the local media
backend (Debian's ffmpeg reading the camera into the rolling buffer, a managed Janus for
WebRTC) against the GStreamer fake camera (640x360 H.264 sub-stream, 15 fps, 1 s GOP).

* snapshot: a simulated door reader sends a card swipe; the time runs until the capture
  row is `ready` (the JPEG decoded from the open stream, encrypted and stored). For
  comparison, a cold `ffmpeg -i rtsp://... -frames:v 1` (connect + wait for a keyframe).
* live start: a guard asks for a ticket (HTTP, audited), then WebRTC (offer from Janus,
  answer from an aiortc viewer, first decoded frame) and HLS (playlist + newest segment,
  first decoded frame).
* CPU per live viewer: Janus's CPU time over a fixed window with 0 and with N WebRTC
  viewers (the relay's cost; the viewers decode in this process and are not counted),
  and the camera reader's (ffmpeg -c copy) CPU per camera.

    uv run python bench/video.py [--snapshots 40] [--starts 10] [--viewers 4]

Figures from a busy shared 2-core machine are noisy: read them as orders of magnitude.
The last line is JSON: snapshot_ms_p95, live_start_ms_p95 (WebRTC), hls_start_ms_p95,
cpu_per_live_viewer_pct, ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # root, not bench/: names shadow

from device_bridge.service import BRIDGE  # noqa: E402
from video.service import VIDEO  # noqa: E402


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1)


async def main(args: argparse.Namespace) -> dict[str, object]:
    import av
    import httpx
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError
    from asgi_lifespan import LifespanManager

    from auth.permissions import Principal
    from auth.tokens import issue_token_pair
    from bench._support import bench_settings
    from boot.roles import build_app
    from device_bridge.simulator.device import DeviceConfig, SimulatedDevice
    from domain.devices.service import register_device
    from models import (
        Building,
        CaptureState,
        City,
        Community,
        DeviceKind,
        StaffAccount,
        StaffRole,
        StaffRoleName,
        Unit,
        VideoCapture,
    )
    from video.fake_camera import fake_camera

    logging.disable(logging.WARNING)
    settings, tmp = bench_settings("video", "")
    settings.video_backend = "local"
    settings.video_janus = "managed"
    app = build_app(settings)
    result: dict[str, object] = {}
    try:
        async with fake_camera(user="admin", password="bench-pass", pattern="ball") as cam:  # noqa: SIM117
            async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
                rt = app.state.runtime
                video = rt.get(VIDEO)
                client = httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=30
                )
                city = await City.create(name="基准市")
                community = await Community.create(city=city, name="视频基准小区")
                b = await Building.create(community=community, name="1栋")
                u = await Unit.create(building=b, community=community, name="1单元")
                staff = await StaffAccount.create(username="bench-guard", password_hash="x")
                for role in (StaffRoleName.ADMIN, StaffRoleName.GUARD):
                    await StaffRole.create(staff=staff, community=community, role=role)
                token = (await issue_token_pair(settings, "staff", staff.id)).access_token
                h = {"Authorization": f"Bearer {token}"}
                principal = Principal(
                    "staff", staff.id, staff=staff, roles={community.id: {StaffRoleName.ADMIN}}
                )
                creds = await register_device(
                    principal,
                    rt.keyring,
                    community.id,
                    kind=DeviceKind.UNIT_DOOR,
                    name="bench door",
                    building_id=b.id,
                    unit_id=u.id,
                    place="",
                    methods=None,
                )
                r = await client.post(
                    f"/api/v1/staff/communities/{community.id}/cameras",
                    json={
                        "name": "bench cam",
                        "main_url": cam.main_url,
                        "sub_url": cam.sub_url,
                        "username": cam.user,
                        "password": cam.password,
                        "door_ids": [creds.device.id],
                    },
                    headers=h,
                )
                camera_id = r.json()["id"]
                await video.sync()
                await video.backend.wait_ready(camera_id, 20)
                await asyncio.sleep(2)

                # ---- snapshots on access events
                sim = SimulatedDevice(
                    DeviceConfig(
                        device_id=creds.device.device_uid,
                        secret=creds.secret,
                        kind="unit_door",
                        root=settings.topic_root,
                    ),
                    mqtt_url=rt.get(BRIDGE).mqtt_url,
                )
                await sim.start()
                snap_ms: list[float] = []
                for i in range(args.snapshots):
                    before = await VideoCapture.filter(camera_id=camera_id).count()
                    t0 = time.perf_counter()
                    await sim.swipe_card(f"X-{i}")
                    while True:
                        rows = await VideoCapture.filter(camera_id=camera_id).order_by("-id")
                        if len(rows) > before and rows[0].state != CaptureState.PENDING:
                            break
                        await asyncio.sleep(0.005)
                    assert rows[0].state == CaptureState.READY, rows[0].error
                    snap_ms.append((time.perf_counter() - t0) * 1000)
                    await asyncio.sleep(0.1)
                await sim.stop(clear_retained=True)
                cold: list[float] = []
                url = cam.sub_url.replace("rtsp://", f"rtsp://{cam.user}:{cam.password}@")
                for _ in range(3):
                    t0 = time.perf_counter()
                    await asyncio.to_thread(
                        subprocess.run,
                        ["ffmpeg", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url,
                         "-frames:v", "1", "-f", "image2", "-y", str(tmp / "cold.jpg")],
                        check=True,
                    )  # fmt: skip
                    cold.append((time.perf_counter() - t0) * 1000)

                # ---- live start: WebRTC and HLS
                async def ticket() -> dict[str, object]:
                    r = await client.post(
                        f"/api/v1/staff/cameras/{camera_id}/live",
                        json={"reason": "基准测试"},
                        headers=h,
                    )
                    assert r.status_code == 200, r.text
                    return r.json()

                async def webrtc_viewer() -> tuple[RTCPeerConnection, asyncio.Future[float]]:
                    t0 = time.perf_counter()
                    live = await ticket()
                    base = f"/api/v1/video/live/{camera_id}/webrtc"
                    r = await client.post(base, json={"ticket": live["ticket"]}, headers=h)
                    offer = r.json()
                    pc = RTCPeerConnection()
                    first: asyncio.Future[float] = asyncio.get_running_loop().create_future()

                    @pc.on("track")
                    def on_track(track: object) -> None:
                        async def pump() -> None:
                            with contextlib.suppress(MediaStreamError):  # closed: done
                                while True:
                                    await track.recv()  # type: ignore[attr-defined]
                                    if not first.done():
                                        first.set_result((time.perf_counter() - t0) * 1000)

                        asyncio.ensure_future(pump())

                    await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
                    await pc.setLocalDescription(await pc.createAnswer())
                    await client.post(
                        f"{base}/{offer['session_id']}/answer",
                        json={"ticket": live["ticket"], "sdp": pc.localDescription.sdp},
                        headers=h,
                    )
                    return pc, first

                webrtc_ms: list[float] = []
                for _ in range(args.starts):
                    pc, first = await webrtc_viewer()
                    webrtc_ms.append(await asyncio.wait_for(first, 20))
                    await pc.close()
                hls_ms: list[float] = []
                for _ in range(args.starts * 2):
                    t0 = time.perf_counter()
                    live = await ticket()
                    playlist = (await client.get(str(live["hls_url"]))).text
                    newest = [x for x in playlist.splitlines() if x and not x.startswith("#")][-1]
                    seg = await client.get(str(live["hls_url"]).replace("index.m3u8", newest))
                    with av.open(io.BytesIO(seg.content), format="mpegts") as c:
                        next(iter(c.decode(video=0)))
                    hls_ms.append((time.perf_counter() - t0) * 1000)

                # ---- CPU: Janus relaying to N viewers; the camera reader
                janus_pid = video.backend.janus.managed.proc.pid
                reader_pid = video.backend.recorders[camera_id].proc.pid
                window = args.window

                async def cpu_over(pid: int) -> float:
                    c0, t0 = _cpu_s(pid), time.perf_counter()
                    await asyncio.sleep(window)
                    return (_cpu_s(pid) - c0) / (time.perf_counter() - t0) * 100

                idle_pct = await cpu_over(janus_pid)
                viewers = [await webrtc_viewer() for _ in range(args.viewers)]
                await asyncio.gather(*(asyncio.wait_for(f, 20) for _, f in viewers))
                busy_pct, reader_pct = await asyncio.gather(
                    cpu_over(janus_pid), cpu_over(reader_pid)
                )
                for pc, _ in viewers:
                    await pc.close()
                await client.aclose()

        result = {
            "snapshots": len(snap_ms),
            "snapshot_ms_p50": _pct(snap_ms, 50),
            "snapshot_ms_p95": _pct(snap_ms, 95),
            "cold_ffmpeg_snapshot_ms_median": _pct(cold, 50),
            "live_starts": len(webrtc_ms),
            "live_start_ms_p50": _pct(webrtc_ms, 50),
            "live_start_ms_p95": _pct(webrtc_ms, 95),
            "hls_start_ms_p50": _pct(hls_ms, 50),
            "hls_start_ms_p95": _pct(hls_ms, 95),
            "viewers": args.viewers,
            "janus_cpu_idle_pct": round(idle_pct, 2),
            "janus_cpu_with_viewers_pct": round(busy_pct, 2),
            "cpu_per_live_viewer_pct": round(max(0.0, busy_pct - idle_pct) / args.viewers, 2),
            "camera_reader_cpu_pct": round(reader_pct, 2),
            "machine": "busy shared 2-core machine (other agents running): noisy",
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--snapshots", type=int, default=40)
    p.add_argument("--starts", type=int, default=10)
    p.add_argument("--viewers", type=int, default=4)
    p.add_argument("--window", type=float, default=8.0, help="CPU sampling window (s)")
    args = p.parse_args()
    result = asyncio.run(main(args))
    print(
        f"event -> stored snapshot ({result['snapshots']} access events, stream kept open): "
        f"p50 {result['snapshot_ms_p50']} ms, p95 {result['snapshot_ms_p95']} ms; "
        f"a cold ffmpeg snapshot: {result['cold_ffmpeg_snapshot_ms_median']} ms"
    )
    print(
        f"ticket -> first frame, WebRTC via Janus ({result['live_starts']} starts): "
        f"p50 {result['live_start_ms_p50']} ms, p95 {result['live_start_ms_p95']} ms; "
        f"HLS from the buffer: p50 {result['hls_start_ms_p50']} ms, "
        f"p95 {result['hls_start_ms_p95']} ms"
    )
    print(
        f"CPU (% of one core): Janus idle {result['janus_cpu_idle_pct']}, with "
        f"{result['viewers']} WebRTC viewers {result['janus_cpu_with_viewers_pct']} -> "
        f"{result['cpu_per_live_viewer_pct']} per viewer; camera reader (ffmpeg -c copy) "
        f"{result['camera_reader_cpu_pct']} per camera"
    )
    print("figures taken on a busy shared 2-core machine: treat them as orders of magnitude")
    print(json.dumps(result))
