"""Shared model pieces: timestamps from the service clock, append-only tables."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

from anxin.clock import utcnow


class TimestampedModel(Model):
    created_at = fields.DatetimeField(default=utcnow)
    updated_at = fields.DatetimeField(default=utcnow)

    class Meta:
        abstract = True

    async def save(self, *args: Any, **kwargs: Any) -> None:
        self.updated_at = utcnow()
        if kwargs.get("update_fields") is not None and "updated_at" not in kwargs["update_fields"]:
            kwargs["update_fields"] = [*kwargs["update_fields"], "updated_at"]
        await super().save(*args, **kwargs)


class AppendOnlyError(RuntimeError):
    pass


class AppendOnlyModel(Model):
    """Rows are written once: a log that can be edited is no log."""

    class Meta:
        abstract = True

    async def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._saved_in_db:
            await super().save(*args, **kwargs)
            return
        # Only minimisation of personal data may touch a written row (retention jobs).
        allowed = set(getattr(self.Meta, "mutable_fields", ()))
        update_fields = kwargs.get("update_fields")
        if not update_fields or not set(update_fields) <= allowed:
            raise AppendOnlyError(f"{type(self).__name__} rows are append-only")
        await super().save(*args, **kwargs)

    async def delete(self, *args: Any, **kwargs: Any) -> None:
        raise AppendOnlyError(f"{type(self).__name__} rows are append-only")
