"""Migrations are generated from the models and agree with them, on both backends."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tortoise import Tortoise

from tests.stack import Stack

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, *, cwd: Path = ROOT, extra_path: Path | None = None) -> str:
    # Tortoise is process-global: initialising it for the check must not disturb the
    # running test stack, so the check runs in its own interpreter.
    env_path = str(ROOT) + (f":{extra_path}" if extra_path else "")
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def test_models_and_migrations_agree() -> None:
    out = run_python(
        """
        import asyncio
        from anxin.db import pending_model_changes
        print(asyncio.run(pending_model_changes()))
        """
    )
    assert out.splitlines()[-1] == "0", "models changed without a migration: anxin makemigrations"


def test_a_model_change_is_detected(tmp_path: Path) -> None:
    """The check above can fail: a model with no migration is noticed."""
    (tmp_path / "extra_models.py").write_text(
        textwrap.dedent(
            """
            from tortoise import fields
            from tortoise.models import Model

            class Unmigrated(Model):
                id = fields.IntField(primary_key=True)
                note = fields.CharField(max_length=10)

                class Meta:
                    table = "unmigrated_for_test"
            """
        )
    )
    out = run_python(
        """
        import asyncio
        import anxin.db as db

        original = db.tortoise_config

        def with_extra(url):
            config = original(url)
            config["apps"][db.APP_LABEL]["models"] = ["models", "extra_models"]
            return config

        db.tortoise_config = with_extra
        print(asyncio.run(db.pending_model_changes()))
        """,
        extra_path=tmp_path,
    )
    assert int(out.splitlines()[-1]) >= 1


async def test_migrated_schema_serves_every_model(stack: Stack) -> None:
    """Every column every model reads exists in the migrated database."""
    models = Tortoise.apps["anxin"]
    assert len(models) >= 10
    for name, model in models.items():
        rows = await model.all().limit(1).values()
        assert isinstance(rows, list), name
