"""`anxin cluster`: the multi-process deployment on one machine, with one command.

Several API workers behind one port (uvicorn's worker manager: one listening socket,
a dead worker is replaced) and two or more `anxin bridge` processes, on PostgreSQL +
Redis + Mosquitto, all under supervisord (PyPI `supervisor`, pinned in uv.lock), which
restarts whatever dies. Each bridge has its own fixed MQTT client id, so its broker
session (and the events queued in it while it restarts) outlives the process; events are
shared among bridges through the shared subscription `$share/<group>/<root>/+/evt`.

The command applies the migrations once, writes `supervisord.conf` under `--conf-dir`
(default `<data_dir>/cluster`) and becomes supervisord (foreground, logs on stdout).
`supervisorctl -c <conf-dir>/supervisord.conf status` shows the processes.
docs/deployment-local.md describes it; deploy/ holds the container files.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from anxin.settings import Settings


class ClusterConfigError(RuntimeError):
    """The cluster needs the server stack; the embedded default is a single process."""


@dataclass(frozen=True)
class ClusterPlan:
    host: str = "127.0.0.1"
    port: int = 8000
    api_workers: int = 3
    bridges: int = 2
    conf_dir: Path = Path("var/cluster")
    log_to_files: bool = False  # tests: one log file per program instead of stdout


def check_stack(settings: Settings) -> None:
    missing = []
    if not settings.uses_postgres:
        missing.append("DATABASE_URL (postgres://...)")
    if not settings.redis_url:
        missing.append("REDIS_URL")
    if not settings.mqtt_url:
        missing.append("MQTT_URL (Mosquitto: shared subscriptions)")
    if missing:
        raise ClusterConfigError(
            "anxin cluster runs on PostgreSQL + Redis + Mosquitto; set " + ", ".join(missing)
        )


def _program(
    name: str, command: list[str], plan: ClusterPlan, env: dict[str, str], **extra: str
) -> str:
    environment = ",".join(f'{k}="{v}"' for k, v in env.items())
    # supervisord reads a program's pipe up to 128 KiB at a time and writes what it read
    # as one record: its CPU goes per read, which the processes' batched log writes keep
    # few (anxin/logs.py).
    if plan.log_to_files:
        out = f"stdout_logfile={plan.conf_dir / '%(program_name)s-%(process_num)d.log'}"
    else:
        out = "stdout_logfile=/dev/stdout\nstdout_logfile_maxbytes=0"
    lines = [
        f"[program:{name}]",
        f"command={shlex.join(command)}",
        f"environment={environment}" if environment else "",
        f"directory={Path.cwd()}",
        "autostart=true",
        "autorestart=true",
        # Restarted at once and forever: a gate must come back, not give up after 3 tries.
        "startsecs=0",
        "startretries=1000000",
        "stopsignal=TERM",
        "stopwaitsecs=15",
        "stopasgroup=true",
        "killasgroup=true",
        "redirect_stderr=true",
        out,
        *(f"{k}={v}" for k, v in extra.items()),
    ]
    return "\n".join(line for line in lines if line) + "\n"


def supervisord_conf(plan: ClusterPlan, settings: Settings) -> str:
    """The supervisord configuration of the deployment (no secret in it: the programs
    inherit supervisord's environment)."""
    py = sys.executable
    d = plan.conf_dir.resolve()
    head = f"""[supervisord]
nodaemon=true
logfile={d / "supervisord.log"}
pidfile={d / "supervisord.pid"}
childlogdir={d}
loglevel=info

[unix_http_server]
file={d / "supervisor.sock"}
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{d / "supervisor.sock"}

"""
    api = _program(
        "api",
        [
            py,
            "-m",
            "boot.cli",
            "serve",
            "--host",
            plan.host,
            "--port",
            str(plan.port),
            "--workers",
            str(plan.api_workers),
        ],
        plan,
        # The API workers send door and library commands; they take no device events.
        {"ANXIN_RUN_BRIDGE": "false", "ANXIN_SKIP_MIGRATIONS": "true"},
    )
    group = settings.mqtt_shared_group
    bridge = _program(
        "bridge",
        [py, "-m", "boot.cli", "bridge"],
        plan,
        {
            # One fixed client id per bridge: a persistent broker session per process.
            "ANXIN_MQTT_CLIENT_ID": f"{group}-{settings.topic_root}-%(process_num)d",
            "ANXIN_SKIP_MIGRATIONS": "true",
        },
        process_name="%(program_name)s-%(process_num)d",
        numprocs=str(plan.bridges),
    )
    return head + api + "\n" + bridge


def write_conf(plan: ClusterPlan, settings: Settings) -> Path:
    plan.conf_dir.mkdir(parents=True, exist_ok=True)
    plan.conf_dir.chmod(0o700)
    path = plan.conf_dir / "supervisord.conf"
    path.write_text(supervisord_conf(plan, settings))
    return path


def exec_supervisord(conf: Path) -> None:
    """Become supervisord (its signals and exit status are the deployment's)."""
    exe = Path(sys.executable).with_name("supervisord")
    os.execv(str(exe), [str(exe), "-n", "-c", str(conf)])
