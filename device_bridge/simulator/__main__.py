"""Run a simulated terminal against a running server.

    python -m device_bridge.simulator --device-id gate-01 --secret S --kind face_gate \\
        --mqtt mqtt://127.0.0.1:1883 --root anxin

Then type commands on stdin (or pass them with --script "card 123; plate 粤B12345"):

    face random|<person-seed>|<file.npy>   card <no>      qr <token>     code <room> <code>
    plate <plate> [in|out]                 call <room>    forced         held
    fence <zone> [intrusion|cut|tamper|cleared]           offline        online
    status                                 sleep <s>      quit

`face <seed>` uses a deterministic 512-d embedding per seed, so a person enrolled with the
same seed on the server side matches. Events, acks and door changes are printed as JSON.

It speaks the protocol as firmware must: it logs in to the broker with its own id and
secret (client id `dev-<id>`), opens the face templates sealed to it, sends keyed codes
sealed to the server, and marks events kept while offline `buffered` (the server logs
those and never opens for them late). docs/device-protocol.md sections 1 and 6.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shlex
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from anxin.settings import get_settings

from .device import DeviceConfig, SimulatedDevice


def seeded_embedding(seed: str, dim: int = 512) -> np.ndarray:
    """Stable fake embedding for a name (tests and demos enroll the same one)."""
    rng = np.random.default_rng(zlib.crc32(seed.encode()))
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def build_parser() -> argparse.ArgumentParser:
    s = get_settings()
    p = argparse.ArgumentParser(
        prog="python -m device_bridge.simulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--device-id", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument(
        "--kind",
        default="face_gate",
        choices=["face_gate", "unit_door", "barrier_gate", "intercom_panel", "fence"],
    )
    p.add_argument("--mode", default="mqtt", choices=["mqtt", "http"])
    p.add_argument("--mqtt", default=s.mqtt_url or "mqtt://127.0.0.1:1883")
    p.add_argument("--http", default="http://127.0.0.1:8000", help="server base URL (--mode http)")
    p.add_argument("--root", default=s.topic_root)
    p.add_argument("--match", default="local", choices=["local", "server"])
    p.add_argument("--threshold", type=float, default=s.face_match_threshold)
    p.add_argument("--relock-s", type=float, default=5.0)
    p.add_argument("--heartbeat-s", type=float, default=30.0)
    p.add_argument("--community", help="community id for offline pass checks")
    p.add_argument("--pass-key", type=Path, help="PEM Ed25519 public key of the community")
    p.add_argument("--script", help='commands separated by ";" to run after connecting')
    p.add_argument("--exit-after", action="store_true", help="exit after --script")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _print(kind: str, obj: Any) -> None:
    print(
        json.dumps(
            {"sim": kind, **obj} if isinstance(obj, dict) else {"sim": kind, "v": obj},
            ensure_ascii=False,
            default=str,
        ),
        flush=True,
    )


async def run_line(sim: SimulatedDevice, line: str) -> bool:
    """Run one command line; False to quit."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        _print("error", str(exc))
        return True
    if not words:
        return True
    cmd, args = words[0].lower(), words[1:]
    try:
        if cmd in ("quit", "exit"):
            return False
        if cmd == "face":
            arg = args[0] if args else "random"
            if arg.endswith(".npy"):
                emb = np.load(arg)
            elif arg == "random":
                emb = seeded_embedding(str(np.random.default_rng().random()))
            else:
                emb = seeded_embedding(arg)
            _print("event", await sim.capture_face(emb))
        elif cmd == "card":
            _print("event", await sim.swipe_card(args[0]))
        elif cmd == "qr":
            evt, verdict = await sim.scan_qr(args[0])
            _print("event", evt)
            if verdict is not None:
                _print(
                    "pass", {"ok": verdict.ok, "reason": verdict.reason, "pass_id": verdict.pass_id}
                )
        elif cmd == "code":
            _print("event", await sim.enter_code(args[0], args[1]))
        elif cmd == "plate":
            _print(
                "event", await sim.read_plate(args[0], direction=args[1] if len(args) > 1 else "in")
            )
        elif cmd == "call":
            _print("event", await sim.call_room(args[0]))
        elif cmd == "forced":
            _print("event", await sim.door_forced())
        elif cmd == "held":
            _print("event", await sim.door_held_open())
        elif cmd == "fence":
            _print(
                "event", await sim.fence_alarm(args[0], args[1] if len(args) > 1 else "intrusion")
            )
        elif cmd == "offline":
            sim.go_offline()
            _print("link", "offline")
        elif cmd == "online":
            await sim.go_online()
            _print("link", "online")
        elif cmd == "sleep":
            await asyncio.sleep(float(args[0]))
        elif cmd == "status":
            _print(
                "status",
                {
                    "connected": sim.link.connected.is_set(),
                    "door_open": sim.door_open,
                    "opened": len(sim.opened),
                    "library_version": sim.library.version,
                    "library_size": len(sim.library),
                    "buffered": len(sim.outbox),
                },
            )
        else:
            _print("error", f"unknown command {cmd!r}")
    except (IndexError, ValueError) as exc:
        _print("error", f"{cmd}: {exc}")
    return True


async def amain(ns: argparse.Namespace) -> int:
    cfg = DeviceConfig(
        device_id=ns.device_id,
        secret=ns.secret,
        kind=ns.kind,
        root=ns.root,
        match_mode=ns.match,
        match_threshold=ns.threshold,
        relock_s=ns.relock_s,
        heartbeat_s=ns.heartbeat_s,
        community_id=ns.community,
        pass_public_key=ns.pass_key.read_bytes() if ns.pass_key else None,
    )
    if ns.mode == "http":
        from ..http_push import HttpDeviceLink

        link: Any = HttpDeviceLink(ns.http, ns.device_id, ns.secret)
        sim = SimulatedDevice(cfg, link=link)
    else:
        sim = SimulatedDevice(cfg, mqtt_url=ns.mqtt)
    _watch(sim)
    await sim.start()
    _print("link", "online")
    try:
        if ns.script:
            for line in ns.script.split(";"):
                if not await run_line(sim, line):
                    return 0
            await sim.flush()
            if ns.exit_after:
                return 0
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or not await run_line(sim, line):
                return 0
    finally:
        if sim.outbox and sim.link.connected.is_set():
            with contextlib.suppress(TimeoutError):
                await sim.flush(5.0)
        await sim.stop()


def _watch(sim: SimulatedDevice) -> None:
    """Print acks as they are sent (wraps the device's ack method)."""
    orig = sim._ack  # noqa: SLF001

    async def ack(
        cmd: dict[str, Any],
        result: str,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        _print(
            "command",
            {"op": cmd.get("op"), "id": cmd.get("id"), "result": result, "reason": reason},
        )
        await orig(cmd, result, reason, detail)

    sim._ack = ack  # type: ignore[method-assign]  # noqa: SLF001


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if ns.verbose else logging.WARNING)
    try:
        return asyncio.run(amain(ns))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
