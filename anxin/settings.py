"""Settings from environment variables, with safe development defaults.

`DATABASE_URL`, `REDIS_URL` and `MQTT_URL` are read without prefix (the usual names);
everything else is `ANXIN_*`. Empty `REDIS_URL` / `MQTT_URL` select the embedded
in-process bus and broker; the default database is a SQLite file under `var/`.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Secrets that were ever published in this repository (defaults of earlier versions, the
# fake WeChat's credentials): never accepted, in any mode.
PUBLIC_SECRETS = frozenset(
    {
        "dev-only-insecure-secret-change-me",  # the JWT default before issue 10
        "wx0000000000demo",  # the fake WeChat's app id and secret (miniprogram_mock)
        "demo-app-secret",
    }
)
MIN_JWT_SECRET_LENGTH = 32
# Real WeChat answers on api.weixin.qq.com and its regional twins (sh.api..., api2...).
WECHAT_API_DOMAIN = "weixin.qq.com"


class InsecureConfiguration(RuntimeError):
    """The server would run with a secret anybody can know: it refuses to start."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANXIN_", extra="ignore")

    env: str = "development"
    data_dir: Path = Path("var")
    database_url: str = Field(
        "sqlite://var/anxin.sqlite3",
        validation_alias=AliasChoices("DATABASE_URL", "ANXIN_DATABASE_URL"),
    )
    redis_url: str = Field("", validation_alias=AliasChoices("REDIS_URL", "ANXIN_REDIS_URL"))
    # REDIS_URL names one node of a Redis Cluster (docs/deployment.md): the cluster client,
    # sharded pub/sub for the bus.
    redis_cluster: bool = False
    mqtt_url: str = Field("", validation_alias=AliasChoices("MQTT_URL", "ANXIN_MQTT_URL"))
    # Every MQTT topic and Redis key starts with this, so tests and tenants can share servers.
    topic_root: str = "anxin"
    redis_prefix: str = "anxin:"
    # Processes of a deployment that ran `anxin migrate` first (`anxin cluster`) start
    # without touching the schema: many processes must not migrate at once.
    skip_migrations: bool = False

    # Tokens. No default: `anxin demo` generates one into data_dir/secrets.json.
    jwt_secret: str = ""
    access_token_ttl_s: int = 15 * 60
    refresh_token_ttl_s: int = 30 * 24 * 3600

    # WeChat mini-program; production points wechat_base_url at https://api.weixin.qq.com
    wechat_base_url: str = "http://127.0.0.1:8765"
    wechat_appid: str = ""
    wechat_secret: str = ""
    # WeChat login calls WeChat for every code: bounded per client address and overall.
    wechat_login_per_ip_per_minute: int = 20
    wechat_login_global_per_minute: int = 600

    # Client addresses in X-Forwarded-For are believed only from these proxies
    # (comma-separated addresses or networks, e.g. "10.0.0.0/8,127.0.0.1"). Empty: none.
    trusted_proxies: str = ""

    # Face data at rest: "kid:base64key,kid2:base64key"; the first key encrypts.
    face_keys: str = ""
    face_backend: str = "insightface"  # or "sface"
    face_model_dir: str = ""  # a larger model pack (e.g. buffalo_l) overrides the shipped models
    face_match_threshold: float = 0.40
    face_match_margin: float = 0.08
    face_high_security: bool = False
    max_upload_bytes: int = 4 * 1024 * 1024
    # Face data retention and records (issue 7)
    face_move_out_grace_days: int = 7  # embeddings deleted this long after move-out
    face_liveness_challenge_ttl_s: int = 120
    face_count_warning_at: int = 80_000  # provincial filing is due at 100,000 people

    # Residents imported by staff are invited; an invitation not accepted by then lapses.
    invitation_ttl_days: int = 90

    # Doors and devices
    command_ttl_s: int = 10
    open_ack_timeout_s: float = 5.0
    device_offline_after_s: int = 90
    # The event consumer runs in the API process unless a separate `anxin bridge` runs it.
    run_bridge: bool = True
    embedded_broker_port: int = 0  # 0: any free loopback port
    mqtt_shared_group: str = "anxin-bridge"
    # Device events (docs/device-protocol.md section 6): a door request whose device time
    # is more than event_max_age_s behind the server clock (or event_max_future_s ahead),
    # or that the device buffered while offline, is logged and never opens a door.
    event_max_age_s: int = 60
    event_max_future_s: int = 30
    # A claimed event is held this long (longer than a handler plus the command TTL); a
    # claim still unfinished after it is taken over and handled again, once.
    event_lease_s: int = 30
    # Finished claims are kept this long (far beyond event_max_age_s: a replay older than
    # this is refused by its age, and its access row's unique key stands too).
    event_claim_ttl_s: int = 7 * 24 * 3600
    # A fixed MQTT client id gives the bridge a persistent broker session (clean_session
    # false): events for it queue in the broker while it restarts. One id per process.
    mqtt_client_id: str = ""
    # Mosquitto with the dynamic-security plugin: the server provisions, rotates, disables
    # and removes device logins through $CONTROL (device_bridge/dynsec.py). MQTT_URL's
    # user must hold dynsec's admin role.
    mqtt_dynsec: bool = False
    # District brokers bridged to MQTT_URL's broker (docs/deployment.md), where devices log
    # in: comma-separated admin URLs (mqtt://user:password@host:port), each broker with the
    # dynamic-security plugin. Every device login is kept on each of them, like on MQTT_URL.
    mqtt_district_urls: str = ""
    # /metrics (Prometheus) answers loopback scrapers; anyone else needs this bearer token.
    metrics_token: str = ""
    snapshot_retention_days: int = 7

    # Video (docs/video.md). "" : no media server (the embedded default; video routes say
    # so); "local": ffmpeg readers + rolling buffer, Janus for WebRTC when configured.
    video_backend: str = ""
    video_secret: str = ""  # signs viewing tickets; derived from jwt_secret when empty
    video_ticket_ttl_s: int = 300
    video_segment_s: int = 1
    video_buffer_s: int = 40  # rolling buffer: the longest pre-roll a clip can have
    video_clip_pre_s: int = 10  # defaults; a community's video policy overrides them
    video_clip_post_s: int = 10
    video_clip_retention_days: int = 7  # same as snapshots unless a community says otherwise
    video_ffmpeg: str = "ffmpeg"
    # Janus (WebRTC): "" none (HLS only); "managed": this process runs Debian's janus on
    # free loopback ports; or the http URL of a Janus you run (its token secret and
    # streaming admin key below).
    video_janus: str = ""
    video_janus_token_secret: str = ""
    video_janus_admin_key: str = ""
    # Police link (GA/T 1400 视图库): its own process role, `anxin police-link`.
    run_police_link: bool = False  # also run it inside `anxin serve` (the demo does)
    police_keepalive_s: int = 60
    police_register_backoff_max_s: int = 300
    police_subscribe_detail: str = "3"  # the platform's code for disposition alerts
    police_trace_bulk_rows: int = 200  # a tracing export above this needs a second approver

    default_timezone: str = "Asia/Shanghai"
    default_language: str = "zh"

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def uses_postgres(self) -> bool:
        return self.database_url.startswith(("postgres://", "postgresql://", "asyncpg://"))

    def check_secrets(self) -> None:
        """Refuse to run with a missing or publicly known secret, in every mode (the demo
        generates its own secrets before it gets here, see anxin/demo_secrets.py)."""
        problems = []
        if not self.jwt_secret:
            problems.append("ANXIN_JWT_SECRET is not set")
        elif self.jwt_secret in PUBLIC_SECRETS:
            problems.append("ANXIN_JWT_SECRET is a value published in the source")
        elif len(self.jwt_secret) < MIN_JWT_SECRET_LENGTH:
            problems.append(f"ANXIN_JWT_SECRET is shorter than {MIN_JWT_SECRET_LENGTH} characters")
        if not self.face_keys.strip():
            problems.append("ANXIN_FACE_KEYS is not set")
        if not self.wechat_appid or not self.wechat_secret:
            problems.append("ANXIN_WECHAT_APPID and ANXIN_WECHAT_SECRET are not set")
        if self.is_production:
            if {self.wechat_appid, self.wechat_secret} & PUBLIC_SECRETS:
                problems.append("the WeChat app id or secret is the fake WeChat's")
            if not is_real_wechat_url(self.wechat_base_url):
                problems.append(
                    f"ANXIN_WECHAT_BASE_URL must be https://…{WECHAT_API_DOMAIN} in production"
                )
        if problems:
            raise InsecureConfiguration("refusing to start: " + "; ".join(problems))


def is_real_wechat_url(url: str) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return parts.scheme == "https" and (
        host == WECHAT_API_DOMAIN or host.endswith("." + WECHAT_API_DOMAIN)
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()


def random_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)
