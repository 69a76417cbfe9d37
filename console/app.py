"""Mounting the console into the FastAPI app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from console.auth_pages import router as auth_router
from console.pages import routers

STATIC_DIR = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:

    app.include_router(auth_router)
    for router in routers():
        app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")
