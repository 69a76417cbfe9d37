"""Benchmark: GA/T 1400 uploads of face captures with their snapshots to the fake police
platform on loopback.

    uv run python bench/police_link.py [--events 3000] [--image-kb 20]

Embedded default (SQLite file in a temp dir) unless DATABASE_URL points at PostgreSQL:
then a fresh database is created for the run and dropped afterwards. N door passages
with an encrypted snapshot each are written first; then the police link collects them
into the upload outbox and sends them (Digest registration, VIID+JSON, 50 objects per
POST, base64 JPEG inline, each object checked and stored by the fake platform, each
upload row marked sent). Timed: from the first collection to the last row marked sent.
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # root, not bench/: names shadow

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from anxin.runtime import Runtime  # noqa: E402
from anxin.settings import Settings  # noqa: E402
from auth.permissions import Principal  # noqa: E402
from bench._support import bench_database  # noqa: E402
from domain.access.snapshots import snapshot_store  # noqa: E402
from domain.police.agreements import AgreementTerms, create_agreement  # noqa: E402
from fake_police.platform import run_fake_police  # noqa: E402
from models import (  # noqa: E402
    AccessEvent,
    AccessMethod,
    AccessResult,
    City,
    Community,
    Device,
    DeviceKind,
    LegalBasis,
    PoliceUpload,
    ShareCategory,
    StaffAccount,
    UploadState,
)
from police_link import service as link_service  # noqa: E402
from police_link.service import PoliceLink  # noqa: E402


def snapshot_jpeg(kb: int, seed: int) -> bytes:
    """A camera-like JPEG of about `kb` KiB (smooth picture plus sensor noise)."""
    rng = np.random.default_rng(seed)
    side = 240
    while True:
        y, x = np.mgrid[0:side, 0:side]
        base = (np.sin(x / 17 + seed) + np.cos(y / 23)) * 60 + 120
        noise = rng.normal(0, 18, (side, side, 3))
        img = np.clip(base[..., None] + noise, 0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(img).save(out, "JPEG", quality=80)
        data = out.getvalue()
        if len(data) >= kb * 1024 * 0.8 or side > 1200:
            return data
        side = int(side * 1.25)


@asynccontextmanager
async def fake_platform(in_process: bool) -> AsyncIterator[tuple[str, Any]]:
    """The fake police platform: its own process by default (a real one is another
    machine), or in this event loop with --in-process."""
    if in_process:
        async with run_fake_police({"anxin": "bench-password"}) as (url, fake):

            async def local_state() -> dict[str, Any]:
                return fake.state()

            yield url, local_state
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(  # noqa: ASYNC220 -- started once, before timing
        [
            sys.executable,
            "-m",
            "fake_police",
            "--port",
            str(port),
            "--user",
            "anxin:bench-password",
        ],
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:

            async def remote_state() -> dict[str, Any]:
                return (await client.get("/__mock__/state")).json()

            for _ in range(300):
                try:
                    await remote_state()
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            yield url, remote_state
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def main(args: argparse.Namespace) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="anxin-bench-police-"))
    try:
        async with bench_database(tmp) as db_url:
            settings = Settings(database_url=db_url, data_dir=tmp, redis_url="", mqtt_url="")
            runtime = Runtime(settings)
            await runtime.start()
            try:
                return await run(args, settings, runtime)
            finally:
                await runtime.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def run(args: argparse.Namespace, settings: Settings, runtime: Runtime) -> dict[str, object]:
    city = await City.create(name="基准市")
    community = await Community.create(city=city, name="基准小区")
    gates = [
        await Device.create(
            device_uid=f"bench-gate-{i}",
            community=community,
            kind=DeviceKind.FACE_GATE,
            name=f"{i}号门",
            place=f"{i}号门",
        )
        for i in range(4)
    ]
    store = snapshot_store(settings)
    images = [snapshot_jpeg(args.image_kb, s) for s in range(8)]
    mean_kb = statistics.mean(len(i) for i in images) / 1024
    # The agreement first: passages count from it on.
    operator = await StaffAccount.create(
        username="bench-operator", password_hash="x", is_operator=True
    )
    principal = Principal("staff", operator.id, staff=operator)
    async with fake_platform(args.in_process) as (url, state_of):
        await create_agreement(
            principal,
            community.id,
            AgreementTerms(
                platform_name="基准视图库",
                base_url=url,
                system_id="33010600002000000001",
                username="anxin",
                password="bench-password",
                center_code="33010600",
                community_code="33010600002160000001",
                legal_basis=LegalBasis.PIPL_13_3,
                document_no="BENCH-1",
                categories=[ShareCategory.FACE_CAPTURES],
                retention_days=30,
                approved_by="bench",
                rate_limit_per_s=args.rate,
            ),
            runtime_keyring(settings),
        )
        t0 = time.perf_counter()
        rows = []
        for i in range(args.events):
            ref = store.save(community.id, f"b{i}", images[i % len(images)])
            rows.append(
                AccessEvent(
                    community_id=community.id,
                    device_id=gates[i % len(gates)].id,
                    method=AccessMethod.FACE,
                    result=AccessResult.GRANTED,
                    reason="resident",
                    snapshot_ref=ref,
                )
            )
        await AccessEvent.bulk_create(rows, batch_size=500)
        prep_s = time.perf_counter() - t0

        link = PoliceLink(runtime)
        posts = 0
        post_s: list[float] = []
        original = link_service.ViidClient.post_objects

        async def timed(self, collection, objects):  # type: ignore[no-untyped-def]
            nonlocal posts
            start = time.perf_counter()
            try:
                return await original(self, collection, objects)
            finally:
                posts += 1
                post_s.append(time.perf_counter() - start)

        link_service.ViidClient.post_objects = timed  # type: ignore[method-assign]
        try:
            start = time.perf_counter()
            sent = 0
            while sent < args.events and time.perf_counter() - start < 300:
                await link.run_once()
                sent = await PoliceUpload.filter(state=UploadState.SENT).count()
            elapsed = time.perf_counter() - start
        finally:
            link_service.ViidClient.post_objects = original  # type: ignore[method-assign]
            await link.stop()
        fake_state = await state_of()
        stored = fake_state["objects"].get("/VIID/Faces", 0)
        with_image = fake_state["with_images"].get("/VIID/Faces", 0)
        refused = len(fake_state["refused"])
    rate = sent / elapsed if elapsed else 0.0
    backend = "postgres" if settings.uses_postgres else "sqlite"
    where = "in this process" if args.in_process else "own process"
    print(f"police link bench ({backend}; fake platform on loopback, {where}; busy machine)")
    print(f"  passages prepared:      {args.events} in {prep_s:.1f} s")
    print(f"  snapshot size:          {mean_kb:.1f} KiB JPEG (base64 inline)")
    print(f"  uploads sent:           {sent} in {elapsed:.2f} s  -> {rate:.0f} uploads/s")
    print(f"  stored by the platform: {stored} ({with_image} with image), refused {refused}")
    print(
        f"  POSTs:                  {posts}, median {statistics.median(post_s) * 1000:.0f} ms"
        if post_s
        else "  POSTs: 0"
    )
    print(f"  payload rate:           {rate * mean_kb * 4 / 3 / 1024:.1f} MiB/s of images")
    return {
        "viid_uploads_per_s": round(rate, 1),
        "uploads": sent,
        "stored": stored,
        "with_image": with_image,
        "image_kib": round(mean_kb, 1),
        "posts": posts,
        "post_median_ms": round(statistics.median(post_s) * 1000, 1) if post_s else None,
        "backend": backend,
    }


def runtime_keyring(settings: Settings):  # type: ignore[no-untyped-def]
    from anxin.crypto import keyring_from_settings

    return keyring_from_settings(settings)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--image-kb", type=int, default=20)
    parser.add_argument("--rate", type=int, default=5000, help="agreement rate limit /s")
    parser.add_argument("--in-process", action="store_true", help="fake platform in this loop")
    result = asyncio.run(main(parser.parse_args()))
    print(json.dumps(result))
