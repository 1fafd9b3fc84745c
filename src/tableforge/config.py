"""Settings from `TABLEFORGE_*` environment variables or a `.env` file (PROTOCOL.md, Configuration)."""

from __future__ import annotations

import os
import secrets
import socket
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tableforge.domain.maintenance import JOB_NAMES, Schedule, parse_duration, parse_schedule

# A duration setting: seconds, or a number with s, m, h or d (`90s`, `15m`, `6h`, `1d`).
Duration = Annotated[float, BeforeValidator(parse_duration)]


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TABLEFORGE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Backends: the mode is chosen once, from these two.
    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path("./tableforge-data")
    instance_id: str = Field(default_factory=_default_instance_id)
    # Several deployments (or test clusters) on one Redis: keys and channels go under
    # `tableforge:<namespace>:` instead of `tableforge:`. Pub/sub channels ignore database numbers.
    instance_id_per_process: bool = False  # set by `serve --workers N`: suffix the id with the pid
    redis_namespace: str = Field("", pattern=r"^[A-Za-z0-9_-]{0,40}$")
    auto_migrate: bool = True
    seed_catalog: bool = True

    # Scale-out: instance heartbeat and expiry (an instance that dies disappears within the expiry).
    instance_heartbeat_seconds: float = Field(10.0, gt=0)
    instance_ttl_seconds: float = Field(30.0, gt=0)

    # Draining and rebalancing (docs/load-balancing.md). A drain (SIGTERM in scale-out mode, or
    # POST /api/admin/instances/{id}/drain) answers /ready with 503 and refuses new sockets for the
    # notice, long enough for the balancer's health checks to see it, then closes the sockets (1012)
    # evenly over the window. A shed (rebalancing) closes the excess over its own window.
    drain_seconds: float = Field(20.0, ge=0, le=3600)
    drain_notice_seconds: float = Field(5.0, ge=0, le=600)
    # At stop, how long uvicorn waits for the sockets' own cleanup (player.left, presence) before it
    # cancels what is left; the instance's stop then cleans up after those in bulk.
    shutdown_grace_seconds: float = Field(10.0, ge=0, le=600)
    # A socket that drops (or is told to come back) keeps its user online this much longer: a player back
    # within it is never announced as gone (services/departures.py). 0: presence ends with the socket.
    presence_grace_seconds: float = Field(3.0, ge=0, le=300)
    rebalance_seconds: float = Field(30.0, ge=0, le=3600)
    # The policy: every N seconds each instance compares its sockets with the cluster's mean and sheds
    # its own excess. 0 = off (the default); `POST /api/admin/rebalance` works either way.
    rebalance_interval_seconds: float = Field(0.0, ge=0, le=86400)
    rebalance_tolerance: float = Field(0.2, ge=0, le=10)  # busy above mean x (1 + tolerance) ...
    rebalance_min_sockets: int = Field(10, ge=1, le=1_000_000)  # ... and at least this many over the mean

    # Database pool (PROTOCOL.md names; seconds).
    db_pool_min: int = Field(5, ge=1, le=1000)
    db_pool_max: int = Field(20, ge=1, le=1000)
    db_idle_timeout: float = Field(30.0, gt=0)
    db_connection_timeout: float = Field(10.0, gt=0)
    db_statement_timeout: float = Field(30.0, gt=0)
    db_ssl_mode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = None
    db_pool_pre_ping: bool = False
    db_slow_query_ms: float = Field(100.0, ge=0)

    # Cache.
    cache_max_size: int = Field(10000, ge=1)
    cache_default_ttl: float = Field(300.0, gt=0)
    cache_eviction: Literal["lru", "lfu", "ttl"] = "lru"
    cache_compression: bool = True
    cache_serialization: Literal["json", "msgpack"] = "msgpack"
    # HTTP edge (Varnish/CDN) purge hook: unset = no purges. Comma-separated URLs for several nodes.
    cdn_purge_url: str | None = None
    cdn_purge_method: Literal["PURGE", "BAN"] = "PURGE"
    cdn_purge_header: str = Field("xkey", pattern=r"^[A-Za-z0-9-]{1,64}$")
    cdn_purge_timeout: float = Field(2.0, gt=0)
    cdn_purge_queue: int = Field(1000, ge=1)
    cdn_purge_wait: float = Field(1.0, ge=0)
    cdn_purge_repeat: float = Field(2.0, ge=0)

    # Auth.
    session_ttl_hours: float = Field(24 * 30, gt=0)
    # Who may create an account over HTTP (`tableforge users create` works in every mode).
    registration: Literal["open", "invite", "closed"] = "open"
    # The single-use ticket a browser trades for its socket (`POST /api/auth/ws-ticket`).
    ws_ticket_seconds: float = Field(30.0, gt=0, le=300)
    # The server's own origin as users reach it (`https://table.example`): Secure cookies when it is
    # https, and the origin a cookie-authenticated socket handshake must come from.
    public_url: str | None = None
    # Other origins whose pages may open cookie-authenticated sockets (comma-separated).
    allowed_origins: str = ""
    # Proxies whose X-Forwarded-Proto/-For are believed (comma-separated addresses or CIDRs).
    trusted_proxies: str = ""
    # Guessing limits (services/attempts.py): at most N wrong guesses per key in a fixed window, then
    # 429 `rate_limited` with Retry-After until the window ends. Shared through Redis in scale-out mode.
    login_max_failures_per_user: int = Field(10, ge=1)
    login_max_failures_per_address: int = Field(100, ge=1)
    login_failure_window: float = Field(300.0, gt=0)
    invite_max_failures_per_user: int = Field(20, ge=1)
    invite_max_failures_per_address: int = Field(100, ge=1)
    invite_failure_window: float = Field(300.0, gt=0)
    # Embedded mode (and the fallback while Redis is down) keeps the counters in memory: at most this many.
    attempt_tracker_max_keys: int = Field(50_000, ge=100)

    # Uploads.
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(64_000_000, ge=1)
    # `GET /assets/...`: files up to `asset_cache_file_bytes` are kept in memory, at most
    # `asset_cache_bytes` in all (api/asset_files.py); larger ones stream from disk. 0 = off.
    asset_cache_bytes: int = Field(32 * 1024 * 1024, ge=0)
    asset_cache_file_bytes: int = Field(512 * 1024, ge=0)
    # A room file sent to `POST /api/rooms/import` (its images are each held to max_upload_bytes).
    max_import_bytes: int = Field(100 * 1024 * 1024, ge=1024)
    # Image checks (Pillow) running at once; the rest wait up to `decode_wait_seconds`, then 503 `server_busy`.
    max_concurrent_decodes: int = Field(2, ge=1, le=64)
    decode_wait_seconds: float = Field(10.0, gt=0)

    # uvicorn's WebSocket protocol implementation. websockets-sansio measured at half the server CPU
    # per delivered frame and half the memory per socket of the legacy "websockets" one
    # (docs/benchmarks.md, "WebSocket implementation").
    ws_implementation: Literal["websockets-sansio", "websockets", "wsproto"] = "websockets-sansio"
    # permessage-deflate (RFC 7692), which every browser offers. Off: with it, each socket keeps a zlib
    # compressor and decompressor for its whole life (~40 KB of RSS a socket, measured, against ~25 KB
    # for the rest of an idle socket), and every frame is compressed once per receiving socket.
    ws_per_message_deflate: bool = False

    # WebSocket limits.
    ws_max_frame_bytes: int = Field(64 * 1024, ge=1024)
    ws_send_queue: int = Field(512, ge=8)
    ws_rate_per_second: float = Field(60.0, gt=0)
    ws_rate_burst: int = Field(120, ge=1)
    ws_ping_interval: float = Field(20.0, gt=0)
    ws_ping_timeout: float = Field(20.0, gt=0)
    ws_history_size: int = Field(1000, ge=10)
    ws_max_rooms_per_socket: int = Field(16, ge=1)
    # Open sockets per user and per client address on one instance (close code 4429 beyond).
    ws_max_per_user: int = Field(20, ge=1)
    ws_max_per_address: int = Field(200, ge=1)

    # Maintenance jobs (services/maintenance): run by one instance at a time, the holder of a lease
    # (in Redis in scale-out mode). Each job's schedule: `off`, `start`, an interval (`6h`), or `start,6h`.
    maintenance_enabled: bool = True  # false: this instance never takes the lease (jobs still run on demand)
    maintenance_lease_seconds: Duration = Field(30.0, ge=1, le=600)
    maintenance_start_delay: Duration = Field(60.0, ge=0, le=86400)  # periodic jobs wait this long after a start
    maintenance_keep_runs: int = Field(100, ge=1, le=10000)  # recorded runs kept per job
    maintenance_optimize_schedule: str = "6h"
    maintenance_event_history_schedule: str = "1h"
    maintenance_sessions_schedule: str = "1h"
    maintenance_assets_schedule: str = "1d"
    maintenance_warm_catalog_schedule: str = "start"
    # An asset file no row names is deleted only once it is this old (an upload writes its file first).
    maintenance_asset_grace: Duration = Field(6 * 3600.0, ge=60)
    # Expired or revoked sessions, and dead registration invites, are deleted after this long.
    maintenance_keep_expired: Duration = Field(7 * 86400.0, ge=0)

    # Logging.
    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("database_url")
    @classmethod
    def _check_db_url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if not v.startswith(("postgresql", "postgres://", "sqlite")):
            raise ValueError("must start with postgresql:// or sqlite:///")
        return v

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return v

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if not v.startswith(("http://", "https://")) or len(v.split("/")) < 3 or not v.split("/")[2]:
            raise ValueError("must be an http:// or https:// URL, e.g. https://table.example")
        return v.rstrip("/")

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, v: str) -> str:
        import ipaddress

        for item in _split(v):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR") from None
        return v

    @field_validator(*(f"maintenance_{job}_schedule" for job in JOB_NAMES))
    @classmethod
    def _check_schedule(cls, v: str) -> str:
        return parse_schedule(v).describe()

    @model_validator(mode="after")
    def _check_pool(self) -> Settings:
        if self.instance_id_per_process and not self.instance_id.endswith(f"-{os.getpid()}"):
            self.instance_id = f"{self.instance_id}-{os.getpid()}"
        if self.db_pool_min > self.db_pool_max:
            raise ValueError("TABLEFORGE_DB_POOL_MIN must not exceed TABLEFORGE_DB_POOL_MAX")
        if self.instance_ttl_seconds <= self.instance_heartbeat_seconds:
            raise ValueError("TABLEFORGE_INSTANCE_TTL_SECONDS must exceed TABLEFORGE_INSTANCE_HEARTBEAT_SECONDS")
        return self

    @cached_property
    def sqlalchemy_url(self) -> str:
        """The async SQLAlchemy URL: asyncpg for PostgreSQL, aiosqlite for SQLite."""
        url = self.database_url
        if url is None:
            return f"sqlite+aiosqlite:///{(self.data_dir / 'tableforge.db').resolve()}"
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://") :]
        if url.startswith("postgresql://"):
            url = "postgresql+asyncpg://" + url[len("postgresql://") :]
        elif url.startswith("sqlite://") and "+aiosqlite" not in url:
            url = "sqlite+aiosqlite://" + url[len("sqlite://") :]
        return url

    @property
    def public_origin(self) -> str | None:
        """`scheme://host[:port]` of the public URL, lower-cased (how browsers send `Origin`)."""
        if self.public_url is None:
            return None
        scheme, _, rest = self.public_url.partition("://")
        return f"{scheme.lower()}://{rest.split('/', 1)[0].lower()}"

    @property
    def allowed_origin_set(self) -> frozenset[str]:
        return frozenset(o.rstrip("/").lower() for o in _split(self.allowed_origins))

    @property
    def trusted_proxy_list(self) -> list[str]:
        return _split(self.trusted_proxies)

    @property
    def redis_prefix(self) -> str:
        return f"tableforge:{self.redis_namespace}:" if self.redis_namespace else "tableforge:"

    @property
    def is_postgres(self) -> bool:
        return self.sqlalchemy_url.startswith("postgresql")

    @property
    def scale_out(self) -> bool:
        return self.redis_url is not None

    @property
    def assets_dir(self) -> Path:
        return self.data_dir / "assets"

    @property
    def maintenance_schedules(self) -> dict[str, Schedule]:
        """Each maintenance job's schedule, by job name (validated when the settings were read)."""
        return {job: parse_schedule(getattr(self, f"maintenance_{job}_schedule")) for job in JOB_NAMES}


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
