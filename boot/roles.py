"""The composition root: which capabilities a process installs, by its role.

Every capability installs through one function of one shape, `install(runtime) -> None`,
that provides its services under typed keys (`runtime.provide(KEY, service)`) and
registers its jobs, event handlers and state hooks. A role is the ordered list of those
functions; nothing else wires a process.

Roles (the README's "what runs where" table says the same):
  all        `anxin demo`, `anxin serve`: HTTP API + console, the device bridge with its
             event consumer, scheduler, dispatcher (the embedded default: one process)
  api        `anxin serve` with ANXIN_RUN_BRIDGE=false: HTTP API + console; door and
             library commands only; scheduler and dispatcher
  bridge     `anxin bridge`: device events -> decisions -> commands; no HTTP, no
             FastAPI, no scheduler (run one or more beside the API workers)
  scheduler  `anxin scheduler`: scheduled jobs and the notification dispatcher; no HTTP
  police     `anxin police-link`: the GA/T 1400 link alone

Modules are imported inside `_capabilities` so a `bridge` process never imports the HTTP
adapter (tests/test_layers.py checks `sys.modules` of a real `anxin bridge`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from anxin.runtime import Runtime
from anxin.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

Install = Callable[[Runtime], None]
ROLES = ("all", "api", "bridge", "scheduler", "police")


def _capabilities(role: str, settings: Settings) -> list[Install]:
    import anxin.scheduler
    import auth.wechat
    import device_bridge.face_handlers
    import device_bridge.handlers
    import device_bridge.pass_handlers
    import device_bridge.service
    import domain.devices.presence
    import domain.devices.replacement
    import domain.faces.capability
    import domain.households.capability
    import domain.visitors.capability
    import notifications.service

    if role == "police":
        import police_link.service

        return [police_link.service.install]
    # The device side: transports and door commands in every role below (remote open,
    # revocations and library syncs are sent from any process), events where run_bridge.
    devices: list[Install] = [
        domain.devices.presence.install,  # devices going offline (a scheduled job)
        domain.households.capability.install,  # departures a crash interrupted (a job)
        device_bridge.service.install,
        device_bridge.handlers.install,  # cards, door states, fence alarms
        domain.visitors.capability.install,  # pass service, expiry jobs
        device_bridge.pass_handlers.install,  # QR, codes, plates, intercom
        domain.faces.capability.install,  # galleries, library sync, retention jobs
        domain.devices.replacement.install,  # dead terminals replaced from a peer's library
        device_bridge.face_handlers.install,  # face capture, library state hook
    ]
    if role == "bridge":
        return devices
    back_office: list[Install] = [
        auth.wechat.install,
        notifications.service.install,  # realtime hub, dispatcher, built-in jobs
        *devices,
    ]
    import video.service

    back_office.append(video.service.install)  # media backend, captures on events
    if role == "scheduler":
        return [*back_office, anxin.scheduler.install]
    import api.visitors.intercom_realtime

    installs = [*back_office, api.visitors.intercom_realtime.install, anxin.scheduler.install]
    if settings.run_police_link:  # normally its own process: `anxin police-link`
        import police_link.service

        installs.append(police_link.service.install)
    return installs


def role_settings(settings: Settings, role: str) -> Settings:
    """The settings a role runs with: only `all` and `bridge` consume device events."""
    if role == "bridge" and not settings.run_bridge:
        return settings.model_copy(update={"run_bridge": True})
    if role in ("api", "scheduler") and settings.run_bridge:
        return settings.model_copy(update={"run_bridge": False})
    return settings


def build_runtime(
    settings: Settings, role: str | None = None, *, owns_database: bool = True
) -> Runtime:
    """A process's runtime for `role` (default: `all`, or `api` when run_bridge is off)."""
    role = role or ("all" if settings.run_bridge else "api")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    settings = role_settings(settings, role)
    runtime = Runtime(settings, owns_database=owns_database, role=role)
    for install in _capabilities(role, settings):
        install(runtime)
    return runtime


def build_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """The HTTP process: the API, the console and (beside the fake WeChat only) the
    resident H5 around a runtime of role `all` or `api`."""
    import console
    import miniprogram_mock.h5_app
    from anxin.settings import get_settings
    from api.app import create_app

    if runtime is None:
        runtime = build_runtime(settings or get_settings())
    app = create_app(runtime)
    console.install(app)  # the staff and operator console at /console/
    miniprogram_mock.h5_app.install(app, runtime.settings)  # the resident H5 at /h5/
    return app
