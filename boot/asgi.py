"""The ASGI app factory for multi-worker serving (`anxin serve --workers N`, `anxin
cluster`): each uvicorn worker process imports this and builds its own app."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI


def create() -> FastAPI:
    from anxin.logs import configure_logging
    from boot.cli import checked_settings, freeze_startup_heap
    from boot.roles import build_app

    configure_logging()
    app = build_app(checked_settings())
    freeze_startup_heap()
    return app
