"""Structured JSON logs, each line carrying the request id.

Every HTTP request writes one access line (api/middleware.py), so the cost of a line is a
cost of every request: the formatter builds the JSON text itself (the same text as
`json.dumps(entry, ensure_ascii=False)`) and formats the timestamp once a second, and the
handler writes lines in batches (one write, and one read by supervisord, per batch
instead of per line).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import threading
from json.encoder import encode_basestring
from typing import TextIO

from anxin.context import current_request_id

# The extra fields a record may carry (the access line's), in the order they are written.
_EXTRA = ("method", "path", "status", "duration_ms")
# Whatever is not a plain str, int or finite float (None, a bool, a list...).
_encode = json.JSONEncoder(ensure_ascii=False).encode


def _json(value: object) -> str:
    if type(value) is str:
        return encode_basestring(value)
    if type(value) is int or (type(value) is float and math.isfinite(value)):
        return repr(value)
    return _encode(value)


class JsonFormatter(logging.Formatter):
    _second: tuple[int, str] = (-1, "")  # (whole second, its "ts" as JSON)

    def format(self, record: logging.LogRecord) -> str:
        second, ts = self._second
        if int(record.created) != second:
            second = int(record.created)
            ts = _json(self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"))
            self._second = (second, ts)  # one tuple: no half-updated cache between threads
        parts = [
            '{"ts": ',
            ts,
            ', "level": ',
            _json(record.levelname.lower()),
            ', "logger": ',
            _json(record.name),
            ', "msg": ',
            _json(record.getMessage()),
        ]
        fields = record.__dict__
        if rid := fields.get("request_id") or current_request_id():
            parts += (', "request_id": ', _json(rid))
        for key in _EXTRA:
            if key in fields:
                parts += (', "', key, '": ', _json(fields[key]))
        if record.exc_info:
            parts += (', "exc": ', _json(self.formatException(record.exc_info)))
        parts.append("}")
        return "".join(parts)


class BatchingStreamHandler(logging.StreamHandler[TextIO]):
    """Writes lines in batches: a WARNING or above at once (with the lines before it),
    others when `capacity` lines are waiting or `interval` seconds after the first of
    them, by a timer thread.

    The price: what waits in the batch is lost when the process is killed with SIGKILL
    or dies in C (at most `interval` seconds of INFO lines; a warning or error is never
    held back). A normal exit writes everything: logging.shutdown (atexit) flushes, and
    uvicorn and `anxin bridge` exit normally on SIGTERM. Text written to stderr
    directly (a traceback from sys.excepthook) may come before INFO lines still waiting.
    """

    def __init__(self, stream: TextIO, interval: float = 0.2, capacity: int = 128) -> None:
        super().__init__(stream)
        self.interval = interval
        # 128 access lines are ~30 KB: one write that a pipe (64 KiB) takes whole.
        self.capacity = capacity
        self._lines: list[str] = []
        self._waiting = threading.Event()  # set while lines wait for the timer
        self._timer: threading.Thread | None = None
        self._closing = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            lines = self._lines
            lines.append(self.format(record))
            at_once = record.levelno >= logging.WARNING or self._closing.is_set()
            if at_once or len(lines) >= self.capacity:
                self.flush()
            elif len(lines) == 1:
                self._waiting.set()
                if self._timer is None or not self._timer.is_alive():  # not yet, or forked
                    self._timer = threading.Thread(target=self._run, name="log-flush", daemon=True)
                    self._timer.start()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self.acquire()
        try:
            self._waiting.clear()
            if self._lines:
                text = self.terminator.join(self._lines) + self.terminator
                self._lines.clear()  # before writing: a failing stream loses the batch once
                self.stream.write(text)
            super().flush()
        finally:
            self.release()

    def close(self) -> None:
        self.acquire()
        try:
            self._closing.set()  # from now on each line is written at once
            self.flush()
        finally:
            self.release()
            super().close()
        self._waiting.set()  # the timer thread ends now, not after its wait

    def _run(self) -> None:
        while not self._closing.is_set():
            self._waiting.wait()
            self._closing.wait(self.interval)
            # A closed or broken stream: ignored, as logging.shutdown does.
            with contextlib.suppress(OSError, ValueError):
                self.flush()


def configure_logging(level: str = "INFO") -> None:
    handler = BatchingStreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, BatchingStreamHandler):
            old.close()  # writes what it holds, ends its timer
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
