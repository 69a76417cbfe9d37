"""The JSON log lines (their format is what operators parse) and their batched writing."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anxin.context import request_id_var
from anxin.logs import BatchingStreamHandler, JsonFormatter

ROOT = Path(__file__).resolve().parents[1]


def _record(
    msg: str, *args: object, level: int = logging.INFO, **extra: object
) -> logging.LogRecord:
    return logging.getLogger("anxin.http").makeRecord(
        "anxin.http", level, __file__, 1, msg, args, None, extra=extra
    )


def test_the_access_line_is_the_json_it_always_was() -> None:
    rec = _record(
        "%s %s %s",
        "GET",
        "/api/v1/路径",
        200,
        method="GET",
        path='/api/v1/路径"\\\n',
        status=200,
        request_id="abc123",
        duration_ms=1.25,
    )
    line = JsonFormatter().format(rec)
    ts = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(rec.created))
    expected = {
        "ts": ts,
        "level": "info",
        "logger": "anxin.http",
        "msg": "GET /api/v1/路径 200",
        "request_id": "abc123",
        "method": "GET",
        "path": '/api/v1/路径"\\\n',
        "status": 200,
        "duration_ms": 1.25,
    }
    # The same text as json.dumps of the fields in this order: one line, UTF-8 as is.
    assert line == json.dumps(expected, ensure_ascii=False)
    assert "\n" not in line


@pytest.mark.parametrize(
    "value", [None, True, float("nan"), float("inf"), -5, 1e300, ["a", {"b": 1}], "中\u2028"]
)
def test_any_extra_value_is_written_as_json_dumps_writes_it(value: object) -> None:
    line = JsonFormatter().format(_record("x", status=value, duration_ms=value))
    entry = json.loads(line)
    assert line.endswith(
        f', "status": {json.dumps(value, ensure_ascii=False)}, '
        f'"duration_ms": {json.dumps(value, ensure_ascii=False)}}}'
    )
    assert list(entry) == ["ts", "level", "logger", "msg", "status", "duration_ms"]


def test_the_request_id_comes_from_the_context_and_an_error_carries_its_traceback() -> None:
    token = request_id_var.set("from-context")
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            rec = logging.getLogger("x").makeRecord(
                "x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
            )
        entry = json.loads(JsonFormatter().format(rec))
    finally:
        request_id_var.reset(token)
    assert entry["request_id"] == "from-context" and entry["level"] == "error"
    assert entry["exc"].startswith("Traceback") and "ValueError: boom" in entry["exc"]


def test_the_timestamp_follows_the_clock_across_seconds() -> None:
    fmt = JsonFormatter()
    first = _record("a")
    for created in (first.created, first.created + 0.5, first.created + 1, first.created + 3600):
        rec = _record("b")
        rec.created = created
        expected = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(created))
        assert json.loads(fmt.format(rec))["ts"] == expected


def _handler(**kw: float) -> tuple[BatchingStreamHandler, io.StringIO]:
    out = io.StringIO()
    handler = BatchingStreamHandler(out, **kw)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler, out


def test_info_lines_wait_for_the_batch_then_come_in_order() -> None:
    handler, out = _handler(interval=0.2)
    try:
        for n in range(3):
            handler.handle(_record(f"line {n}"))
        assert out.getvalue() == ""
        deadline = time.monotonic() + 5
        while not out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert out.getvalue() == "line 0\nline 1\nline 2\n"
        handler.handle(_record("later"))  # a new batch after the first was written
        time.sleep(0.5)
        assert out.getvalue().endswith("line 2\nlater\n")
    finally:
        handler.close()


def test_a_warning_is_written_at_once_after_the_lines_before_it() -> None:
    handler, out = _handler(interval=60)
    try:
        handler.handle(_record("request"))
        handler.handle(_record("trouble", level=logging.WARNING))
        assert out.getvalue() == "request\ntrouble\n"
    finally:
        handler.close()


def test_a_full_batch_is_written_without_waiting() -> None:
    handler, out = _handler(interval=60, capacity=3)
    try:
        for n in range(4):
            handler.handle(_record(f"{n}"))
        assert out.getvalue() == "0\n1\n2\n"
    finally:
        handler.close()


def test_closing_writes_what_waits_and_ends_the_timer() -> None:
    handler, out = _handler(interval=60)
    handler.handle(_record("last words"))
    timer = handler._timer
    assert timer is not None and timer.is_alive()
    handler.close()
    assert out.getvalue() == "last words\n"
    timer.join(2)
    assert not timer.is_alive()
    handler.handle(_record("after close"))  # no timer any more: written at once
    assert out.getvalue() == "last words\nafter close\n"


def test_a_process_that_exits_writes_its_waiting_lines() -> None:
    code = (
        "import logging; from anxin.logs import configure_logging; configure_logging(); "
        "logging.getLogger('anxin.test').info('bye %s', 1)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    entry = json.loads(proc.stderr)
    assert entry["msg"] == "bye 1" and entry["logger"] == "anxin.test"
