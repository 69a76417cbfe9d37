"""`anxin` command line: serve, cluster, demo, bridge, scheduler, police-link, simulate, migrate,
makemigrations, create-staff. Processes are built by the composition root (boot/roles.py)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from anxin.logs import configure_logging
from anxin.settings import InsecureConfiguration, Settings, get_settings

T = TypeVar("T")


def checked_settings() -> Settings:
    """The settings, or exit with what is missing or publicly known (no traceback)."""
    settings = get_settings()
    try:
        settings.check_secrets()
    except InsecureConfiguration as exc:
        sys.exit(f"anxin: {exc}")
    return settings


def uvicorn_config(app: Any, host: str, port: int) -> Any:
    """How `serve` and `demo` run the app. uvicorn's own proxy headers stay off: it would
    believe X-Forwarded-For from any loopback peer. Our middleware reads it, and only from
    ANXIN_TRUSTED_PROXIES (api/security.py). uvicorn's access log is off: the app writes
    its own, one line per request with the request id and duration (api/middleware.py)."""
    import uvicorn

    return uvicorn.Config(
        app, host=host, port=port, log_config=None, proxy_headers=False, access_log=False
    )


def freeze_startup_heap() -> None:
    """Put what a process built at start-up (modules, the app, its routes and schemas:
    about 230,000 objects in an API worker) out of the cycle collector's reach. A full
    collection walks every tracked object: ~150 ms for an API worker's heap on an idle
    core, the whole worker answering nothing meanwhile (and bench/load.py saw 300-650 ms
    stalls a few seconds into its load). Frozen, a full collection under that load took
    under 1 ms. These objects live as long as the process; they are still freed by
    reference counting, only never scanned for cycles again."""
    gc.collect()  # garbage from start-up is freed, not frozen
    gc.freeze()


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run a role's main coroutine on uvloop (installed with uvicorn[standard]), the loop
    uvicorn already gives the API workers: one event loop for every process of a
    deployment, its scheduling and transports in C. asyncio's own loop where it is missing.
    (On bench/load.py the bridges' CPU per event moved within the noise: it goes to send
    system calls, the database client and our code.)"""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _serve(host: str, port: int, workers: int = 1) -> None:
    import uvicorn

    if workers > 1:
        # One listening socket, `workers` processes each building its app (boot/asgi.py);
        # uvicorn's manager replaces a worker that dies.
        checked_settings()  # refuse before forking when a secret is missing
        uvicorn.run(
            "boot.asgi:create",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            proxy_headers=False,
            access_log=False,
        )
        return
    from boot.roles import build_app

    app = build_app(checked_settings())
    freeze_startup_heap()
    uvicorn.Server(uvicorn_config(app, host, port)).run()


def _cluster(args: argparse.Namespace) -> None:
    from boot.cluster import (
        ClusterConfigError,
        ClusterPlan,
        check_stack,
        exec_supervisord,
        write_conf,
    )

    settings = checked_settings()
    try:
        check_stack(settings)
    except ClusterConfigError as exc:
        sys.exit(f"anxin cluster: {exc}")
    from anxin.db import migrate

    asyncio.run(migrate(settings.database_url))  # once, before any process starts
    plan = ClusterPlan(
        host=args.host,
        port=args.port,
        api_workers=args.api_workers,
        bridges=args.bridges,
        conf_dir=Path(args.conf_dir) if args.conf_dir else Path(settings.data_dir) / "cluster",
        log_to_files=args.log_files,
    )
    conf = write_conf(plan, settings)
    print(
        f"anxin cluster: {plan.api_workers} API workers on http://{plan.host}:{plan.port}, "
        f"{plan.bridges} bridges; supervisorctl -c {conf} status",
        flush=True,
    )
    exec_supervisord(conf)


def _without_credentials(url: str) -> str:
    if not url:
        return ""
    from device_bridge.mqtt import parse_mqtt_url

    p = parse_mqtt_url(url)
    return f"mqtt://{p.host}:{p.port}"


async def _demo(host: str, port: int, wechat_port: int, police_port: int) -> None:
    """Embedded default: SQLite, in-process bus and broker, fake WeChat and fake police
    platform on loopback."""
    import contextlib
    import os
    import shutil

    import uvicorn

    from anxin.db import close_db, init_db
    from anxin.demo_secrets import DemoSecretsError, apply_demo_secrets
    from boot.demo import seed_demo, seed_demo_devices
    from boot.demo_history import seed_history
    from fake_police.demo import DEMO_POLICE_PASSWORD, DEMO_POLICE_USER, seed_demo_agreement
    from fake_police.platform import run_fake_police
    from miniprogram_mock.fake_wechat import create_app as create_fake_wechat
    from miniprogram_mock.fake_wechat import run_fake_wechat
    from video.fake_camera import demo as demo_camera

    background = contextlib.AsyncExitStack()
    camera, no_camera = await demo_camera.start(background)
    if camera is not None:  # moving pictures for the console's live view
        os.environ.setdefault("ANXIN_VIDEO_BACKEND", "local")
        if shutil.which("janus"):
            os.environ.setdefault("ANXIN_VIDEO_JANUS", "managed")
    os.environ.setdefault("ANXIN_WECHAT_BASE_URL", f"http://127.0.0.1:{wechat_port}")
    os.environ.setdefault("ANXIN_EMBEDDED_BROKER_PORT", "18830")
    try:
        apply_demo_secrets(host, get_settings().data_dir)
    except DemoSecretsError as exc:
        sys.exit(f"anxin demo: {exc}")
    os.environ.setdefault("ANXIN_RUN_POLICE_LINK", "true")
    get_settings.cache_clear()
    settings = checked_settings()
    await init_db(settings)
    info = await seed_demo(os.environ.get("ANXIN_DEMO_PASSWORD"))
    devices = await seed_demo_devices(settings, info.community_id)
    await seed_history(info.community_id)
    police_url = f"http://127.0.0.1:{police_port}"
    await seed_demo_agreement(
        settings, info.community_id, police_url, f"http://{host}:{port}/VIID/SubscribeNotifications"
    )
    if camera is not None:
        await demo_camera.seed(settings, info.community_id, camera)
    await close_db()
    # Where devices connect; each logs in with its own id and secret (never the server's).
    broker = _without_credentials(settings.mqtt_url) or (
        f"mqtt://127.0.0.1:{settings.embedded_broker_port}"
    )

    from boot.roles import build_app

    async with (
        background,
        run_fake_wechat(
            port=wechat_port, app=create_fake_wechat(settings.wechat_appid, settings.wechat_secret)
        ) as wechat_url,
        run_fake_police({DEMO_POLICE_USER: DEMO_POLICE_PASSWORD}, port=police_port) as (
            police,
            fake_police,
        ),
    ):
        # The fake platform delivers its disposition hits to the demo API with Digest.
        fake_police.deliver_auth = (DEMO_POLICE_USER, DEMO_POLICE_PASSWORD)
        print(f"安心 Anxin demo · 演示小区 安心花园 (community {info.community_id})")
        print(f"  console:      http://{host}:{port}/console/   物业管理台 (staff and operators)")
        if info.staff_password:
            print(
                "  logins:       admin / approver / guard / security / operator, "
                f"password {info.staff_password}"
            )
        else:
            print(
                "  logins:       admin / approver / guard / security / operator (set on first run)"
            )
        print(f"  resident app: http://{host}:{port}/h5/   住户端 H5 (WeChat login via the fake)")
        print(f"  API:          http://{host}:{port}/docs")
        print(f"  fake WeChat:  {wechat_url}")
        print(f"  secrets:      {settings.data_dir}/secrets.json (generated on first run)")
        print(f"  fake police:  {police}/__mock__/state (GA/T 1400; docs/police-link.md)")
        print(f"  MQTT broker:  {broker} (topic root {settings.topic_root})")
        if camera is not None:
            print(f"  camera:       fake RTSP camera {camera.sub_url} at the main gate; console")
            print(f"                /console/ -> 视频监控 (media backend {settings.video_backend})")
        else:
            print(f"  camera:       none ({no_camera}); video says no media server")
        print(f"  devices:      {settings.data_dir}/demo-devices.json; run one with")
        for d in devices[:1]:
            print(
                f"    uv run anxin simulate --device-id {d['device_id']} --secret {d['secret']} "
                f"--kind {d['kind']} --mqtt {broker} --root {settings.topic_root}"
            )
        server = uvicorn.Server(uvicorn_config(build_app(settings), host, port))
        await server.serve()


async def _run_role(role: str, banner: str) -> None:
    """A process without HTTP, built by the composition root for `role`; runs until
    SIGINT/SIGTERM."""
    import signal

    from boot.roles import build_runtime

    runtime = build_runtime(checked_settings(), role)
    await runtime.start()
    freeze_startup_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(banner, flush=True)
    try:
        await stop.wait()
    finally:
        await runtime.stop()


async def _bridge() -> None:
    """The device bridge alone: events in, decisions and commands out, no HTTP.

    Run one or more beside API workers started with ANXIN_RUN_BRIDGE=false; with Mosquitto
    they share the device events through a shared subscription.
    """
    settings = get_settings()
    if not settings.mqtt_url:
        sys.exit("anxin bridge needs MQTT_URL (the embedded broker lives inside `anxin serve`)")
    where = _without_credentials(settings.mqtt_url)
    await _run_role("bridge", f"anxin bridge: {where} root {settings.topic_root}")


async def _create_staff(
    username: str, password: str, community_id: int, role: str, operator: bool
) -> None:
    from anxin.db import close_db, init_db
    from auth.passwords import MIN_PASSWORD_LENGTH, hash_password_async
    from models import StaffAccount, StaffRole, StaffRoleName

    if len(password) < MIN_PASSWORD_LENGTH:
        sys.exit(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    await init_db(get_settings())
    try:
        staff, _ = await StaffAccount.get_or_create(
            username=username,
            defaults={
                "password_hash": await hash_password_async(password),
                "is_operator": operator,
            },
        )
        await StaffRole.get_or_create(
            staff=staff, community_id=community_id, role=StaffRoleName(role)
        )
    finally:
        await close_db()


async def _makemigrations(check: bool, name: str | None) -> int:
    from anxin.db import make_migrations, pending_model_changes

    if check:
        pending = await pending_model_changes()
        print(
            "models and migrations agree" if not pending else "models changed: run makemigrations"
        )
        return 1 if pending else 0
    for path in await make_migrations(name):
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="anxin", description="安心 Anxin community backend")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API server (applies migrations first)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="API worker processes")
    cluster = sub.add_parser(
        "cluster",
        help="API workers + bridges under supervisord (PostgreSQL, Redis, Mosquitto)",
    )
    cluster.add_argument("--host", default="127.0.0.1")
    cluster.add_argument("--port", type=int, default=8000)
    cluster.add_argument("--api-workers", type=int, default=3)
    cluster.add_argument("--bridges", type=int, default=2)
    cluster.add_argument("--conf-dir", help="where supervisord.conf goes (<data_dir>/cluster)")
    cluster.add_argument("--log-files", action="store_true", help="one log file per process")
    demo = sub.add_parser("demo", help="embedded default with a demo community and fake WeChat")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--wechat-port", type=int, default=8765)
    demo.add_argument("--police-port", type=int, default=8766)
    sub.add_parser("bridge", help="run the device bridge as its own process (needs MQTT_URL)")
    sub.add_parser("scheduler", help="run the scheduled jobs and the notification dispatcher")
    sub.add_parser("police-link", help="run the GA/T 1400 police link as its own process")
    sub.add_parser("simulate", help="run a device simulator (see --help)", add_help=False)
    sub.add_parser("migrate", help="apply migrations to DATABASE_URL")
    mk = sub.add_parser("makemigrations", help="write a migration for model changes")
    mk.add_argument("--check", action="store_true", help="exit 1 if models and migrations differ")
    mk.add_argument("--name")
    staff = sub.add_parser("create-staff", help="create a staff account with a role")
    staff.add_argument("username")
    staff.add_argument("--password", required=True)
    staff.add_argument("--community", type=int, required=True)
    staff.add_argument("--role", choices=["admin", "approver", "guard", "security"], required=True)
    staff.add_argument("--operator", action="store_true")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulate"]:
        from device_bridge.simulator.__main__ import main as simulate

        sys.exit(simulate(argv[1:]))
    args = parser.parse_args(argv)
    configure_logging()

    if args.command == "serve":
        _serve(args.host, args.port, args.workers)
    elif args.command == "cluster":
        _cluster(args)
    elif args.command == "demo":
        run_loop(_demo(args.host, args.port, args.wechat_port, args.police_port))
    elif args.command == "bridge":
        run_loop(_bridge())
    elif args.command == "scheduler":
        run_loop(_run_role("scheduler", "anxin scheduler: running the scheduled jobs"))
    elif args.command == "police-link":
        msg = "anxin police-link: uploading under the active data-sharing agreements"
        run_loop(_run_role("police", msg))
    elif args.command == "migrate":
        from anxin.db import migrate

        asyncio.run(migrate(get_settings().database_url))
        print("migrations applied")
    elif args.command == "makemigrations":
        sys.exit(asyncio.run(_makemigrations(args.check, args.name)))
    elif args.command == "create-staff":
        asyncio.run(
            _create_staff(args.username, args.password, args.community, args.role, args.operator)
        )


if __name__ == "__main__":
    main()
