"""Structured JSON logs, each line carrying the request id."""

from __future__ import annotations

import json
import logging
import sys

from anxin.context import current_request_id


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if rid := getattr(record, "request_id", None) or current_request_id():
            entry["request_id"] = rid
        for key in ("method", "path", "status", "duration_ms"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs whole URLs at INFO; WeChat puts the AppSecret and access token there.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # APScheduler logs every run of every job at INFO ("Running job ...", "executed
    # successfully") and a skipped tick on a busy machine at WARNING ("was missed by"; the
    # next tick runs it): lines every few seconds that say nothing. A job that fails is
    # logged by anxin.scheduler itself.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
