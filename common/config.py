"""Configuration: parsed once from the environment into a frozen dataclass."""
from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass, field
from typing import Mapping

from node.validation import parse_capacity_text, parse_labels_text
from scheduler import ALIASES, DEFAULT, STRATEGIES
from task.errors import ValidationError
from task.reference import InvalidReference, parse_pattern
from task.validation import MAX_PIDS, MIN_PIDS, parse_size

MIN_TOKEN = 16
MAX_TOKEN = 1024
MAX_PATTERN = 512
MAX_PIDS_LIMIT = max(MAX_PIDS, 4_194_304)  # the kernel's pid_max ceiling
TOKEN_HINT = ("generate a token and give every manager and worker the same one: "
              "export ORCA_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')")
DEFAULT_RETENTION = 86400.0  # a day
MAX_RETENTION = 10 * 365 * 86400
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_TOKEN = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: it travels in an HTTP header


class ConfigError(ValueError):
    """A variable has a value Orca cannot use; the message names it."""


@dataclass(frozen=True)
class Config:
    """Every setting of a manager or worker process (see README's configuration table)."""

    manager_host: str = "127.0.0.1"
    manager_port: int = 5555
    worker_host: str = "127.0.0.1"
    worker_port: int = 5556
    worker_count: int = 2
    workers: tuple[str, ...] = ()
    worker_name: str = ""
    log_level: str = "info"
    scheduler: str = DEFAULT
    dispatch_interval: float = 1.0
    sync_interval: float = 0.5
    stats_interval: float = 2.0
    down_after: int = 3
    stop_timeout: int = 10
    start_threads: int = 8
    http_threads: int = 16
    docker_host: str = "unix:///var/run/docker.sock"
    docker_timeout: float = 60.0
    request_timeout: float = 5.0
    store: str = "sqlite"
    data_dir: str = "./data"
    restart_backoff: float = 1.0
    health_interval: float = 5.0
    health_failures: int = 3
    gc_after: float = 600.0
    retention: float | None = DEFAULT_RETENTION  # ORCA_RETENTION seconds; None: finished tasks are kept (off)
    token: str = field(default="", repr=False)  # a secret: never in repr, logs or responses
    database_url: str = field(default="", repr=False)  # may hold a password: never in repr or logs
    lease_ttl: float = 15.0
    manager_name: str = ""
    manager_address: str = ""  # host:port other managers reach this one at (default: the listen address)
    allowed_images: tuple[str, ...] = ()
    placeholder_image: str = "busybox"  # what a seed-API container that names no image runs (sleep infinity)
    manager_urls: tuple[str, ...] = ()  # ORCA_MANAGER_URL: a worker joins one of them (POST /nodes) when it starts
    node_capacity: tuple[tuple[str, float], ...] = ()  # ORCA_NODE_CAPACITY; empty: the host's
    node_labels: tuple[tuple[str, str], ...] = ()  # ORCA_NODE_LABELS
    pull_timeout: float = 300.0
    pids_limit: int = 1024
    log_max_size: int = 10 * 1024 * 1024
    log_max_files: int = 3

    def worker_address(self, index: int = 0) -> str:
        """host:port of the index-th worker of this process."""
        return f"{self.worker_host}:{self.worker_port + index}"


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    return _number(env, name, default, low, high, int, "an integer")


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    return _number(env, name, default, low, high, float, "a number")


def _number(env, name, default, low, high, kind, what):
    """Parse variable `name` as `kind` within [low, high]; raise ConfigError naming it."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
    if not low <= value <= high:  # also refuses nan
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _retention(env: Mapping[str, str]) -> float | None:
    """ORCA_RETENTION: seconds, or a number with a unit (30s, 15m, 24h, 7d); "off" keeps
    finished tasks. Raise ConfigError naming it."""
    raw = env.get("ORCA_RETENTION", "").strip().lower()
    if not raw:
        return DEFAULT_RETENTION
    if raw == "off":
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd]?)", raw)
    value = float(match.group(1)) * _UNITS[match.group(2)] if match else -1.0
    if not 1 <= value <= MAX_RETENTION:
        raise ConfigError(f"ORCA_RETENTION must be a duration between 1s and {MAX_RETENTION // 86400}d "
                          f"(seconds, or with a unit: 30s, 15m, 24h, 7d) or off, got {raw[:64]!r}")
    return value


def _size(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """Variable `name` as bytes ("10m", "1g" or a number) within [low, high]; raise ConfigError."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        size = parse_size(raw, name)
    except ValidationError as exc:
        raise ConfigError(str(exc)) from None
    if not low <= size <= high:
        raise ConfigError(f"{name} must be between {low} and {high} bytes, got {size}")
    return size


def _workers(raw: str) -> tuple[str, ...]:
    addresses = tuple(a.strip() for a in raw.split(",") if a.strip())
    for address in addresses:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError(f"ORCA_WORKERS entry {address!r} must be host:port")
    return addresses


def _token(raw: str) -> str:
    """ORCA_TOKEN, checked without ever putting its value into a message."""
    token = raw.strip()
    if token and (not MIN_TOKEN <= len(token) <= MAX_TOKEN or not _TOKEN.match(token)):
        raise ConfigError(f"ORCA_TOKEN must be {MIN_TOKEN}-{MAX_TOKEN} visible ASCII characters "
                          f"without spaces; {TOKEN_HINT}")
    return token


def _patterns(raw: str) -> tuple[str, ...]:
    """ORCA_ALLOWED_IMAGES: comma-separated entries, each a repository pattern in Docker's
    reference grammar (see task/reference.py); raise ConfigError naming a bad one."""
    patterns = tuple(p.strip() for p in raw.split(",") if p.strip())
    for pattern in patterns:
        if len(pattern) > MAX_PATTERN or not pattern.isprintable() or any(c.isspace() for c in pattern):
            raise ConfigError(f"ORCA_ALLOWED_IMAGES entry {pattern[:64]!r} is not an image pattern")
        try:
            parse_pattern(pattern)
        except InvalidReference as exc:
            raise ConfigError(f"ORCA_ALLOWED_IMAGES entry is not an image pattern: {exc}") from None
    return patterns


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (bracketed or not); False for anything else,
    0.0.0.0, :: and host names included."""
    host = host.strip().lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(config: Config, role: str = "all") -> None:
    """Refuse to listen beyond loopback without a token.

    Args:
        role: "manager", "worker" or "all"; only the listen addresses of the role count.
    Raises:
        ConfigError: naming the variable and saying how to set ORCA_TOKEN.
    """
    if config.token:
        return
    hosts = {"manager": ("ORCA_MANAGER_HOST",), "worker": ("ORCA_WORKER_HOST",)}.get(
        role, ("ORCA_MANAGER_HOST", "ORCA_WORKER_HOST"))
    for name in hosts:
        host = config.manager_host if name == "ORCA_MANAGER_HOST" else config.worker_host
        if not is_loopback(host):
            raise ConfigError(f"refusing to listen on {name}={host} without ORCA_TOKEN: anyone who "
                              f"reaches the port could run containers. To fix it, {TOKEN_HINT} "
                              f"(or listen on 127.0.0.1)")


def from_env(env: Mapping[str, str]) -> Config:
    """Build a Config from environment variables, validating each; raise ConfigError.

    Also refuses (ConfigError) a manager or worker host beyond loopback without ORCA_TOKEN.
    """
    level = env.get("ORCA_LOG_LEVEL", "info").strip().lower() or "info"
    if not isinstance(logging.getLevelName(level.upper()), int):
        raise ConfigError(f"ORCA_LOG_LEVEL must be debug, info, warning or error, got {level!r}")
    config = _build(env, level)
    check_binding(config)
    check_manager_identity(config)
    return config


WILDCARDS = ("0.0.0.0", "::", "[::]", "")


def check_manager_identity(config: Config) -> None:
    """Managers sharing a database name themselves by ORCA_MANAGER_NAME, else by the address
    other managers reach them at. A wildcard listen address (0.0.0.0) names no one: two hosts
    would share the name and take the lease from each other, and followers would forward writes
    to themselves. Raise ConfigError unless ORCA_MANAGER_ADDRESS says where this one is."""
    if config.database_url and not config.manager_address and config.manager_host in WILDCARDS:
        raise ConfigError(f"ORCA_MANAGER_ADDRESS must be set (host:port other managers reach this "
                          f"one at) when ORCA_DATABASE_URL is set and ORCA_MANAGER_HOST is "
                          f"{config.manager_host or 'empty'}")


def _build(env: Mapping[str, str], level: str) -> Config:
    return Config(
        manager_host=env.get("ORCA_MANAGER_HOST", "").strip() or "127.0.0.1",
        manager_port=_int(env, "ORCA_MANAGER_PORT", 5555, 0, 65535),
        worker_host=env.get("ORCA_WORKER_HOST", "").strip() or "127.0.0.1",
        worker_port=_int(env, "ORCA_WORKER_PORT", 5556, 0, 65535),
        worker_count=_int(env, "ORCA_WORKER_COUNT", 2, 0, 64),
        workers=_workers(env.get("ORCA_WORKERS", "")),
        worker_name=env.get("ORCA_WORKER_NAME", "").strip(),
        log_level=level,
        scheduler=_scheduler(env),
        dispatch_interval=_float(env, "ORCA_DISPATCH_INTERVAL", 1.0, 0.05, 60),
        sync_interval=_float(env, "ORCA_SYNC_INTERVAL", 0.5, 0.05, 60),
        stats_interval=_float(env, "ORCA_STATS_INTERVAL", 2.0, 0.1, 600),
        down_after=_int(env, "ORCA_DOWN_AFTER", 3, 1, 1000),
        stop_timeout=_int(env, "ORCA_STOP_TIMEOUT", 10, 0, 600),
        start_threads=_int(env, "ORCA_START_THREADS", 8, 1, 128),
        http_threads=_int(env, "ORCA_HTTP_THREADS", 16, 1, 256),
        docker_host=env.get("DOCKER_HOST", "").strip() or "unix:///var/run/docker.sock",
        store=_choice(env, "ORCA_STORE", "sqlite", ("sqlite", "memory")),
        data_dir=env.get("ORCA_DATA_DIR", "").strip() or "./data",
        restart_backoff=_float(env, "ORCA_RESTART_BACKOFF", 1.0, 0.0, 3600),
        health_interval=_float(env, "ORCA_HEALTH_INTERVAL", 5.0, 0.1, 3600),
        health_failures=_int(env, "ORCA_HEALTH_FAILURES", 3, 1, 1000),
        gc_after=_float(env, "ORCA_GC_AFTER", 600.0, 0.0, 10 * 365 * 86400),
        retention=_retention(env),
        token=_token(env.get("ORCA_TOKEN", "")),
        allowed_images=_patterns(env.get("ORCA_ALLOWED_IMAGES", "")),
        manager_urls=_manager_urls(env.get("ORCA_MANAGER_URL", "")),
        node_capacity=_node_setting(parse_capacity_text, env.get("ORCA_NODE_CAPACITY", "")),
        node_labels=_node_setting(parse_labels_text, env.get("ORCA_NODE_LABELS", "")),
        database_url=_database_url(env.get("ORCA_DATABASE_URL", "")),
        lease_ttl=_float(env, "ORCA_LEASE_TTL", 15.0, 0.5, 3600),
        manager_name=env.get("ORCA_MANAGER_NAME", "").strip(),
        manager_address=_address(env, "ORCA_MANAGER_ADDRESS"),
        placeholder_image=_placeholder(env.get("ORCA_PLACEHOLDER_IMAGE", "")),
        pull_timeout=_float(env, "ORCA_PULL_TIMEOUT", 300.0, 1.0, 24 * 3600),
        pids_limit=_int(env, "ORCA_PIDS_LIMIT", 1024, MIN_PIDS, MAX_PIDS_LIMIT),
        log_max_size=_size(env, "ORCA_LOG_MAX_SIZE", 10 * 1024 * 1024, 1024, 1 << 40),
        log_max_files=_int(env, "ORCA_LOG_MAX_FILES", 3, 1, 100),
    )


def _placeholder(raw: str) -> str:
    """ORCA_PLACEHOLDER_IMAGE: an image reference (default busybox)."""
    image = raw.strip() or "busybox"
    if len(image) > 512 or any(c.isspace() for c in image):
        raise ConfigError(f"ORCA_PLACEHOLDER_IMAGE must be an image reference, got {image[:64]!r}")
    return image


def _address(env: Mapping[str, str], name: str) -> str:
    """A host:port variable (empty when unset); raise ConfigError naming it."""
    address = env.get(name, "").strip()
    host, _, port = address.rpartition(":")
    if address and (not host or not port.isdigit() or not 1 <= int(port) <= 65535):
        raise ConfigError(f"{name} must be host:port, got {address[:64]!r}")
    return address


def _database_url(raw: str) -> str:
    """ORCA_DATABASE_URL: empty, or a postgresql:// / postgres:// URL (checked for reach at start)."""
    url = raw.strip()
    if url and not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("ORCA_DATABASE_URL must start with postgresql:// (or be empty for the SQLite store)")
    return url


def _manager_urls(raw: str) -> tuple[str, ...]:
    """ORCA_MANAGER_URL: http(s)://host:port of the manager a worker joins (several, separated
    by commas, when managers share a database)."""
    urls = tuple(u.strip().rstrip("/") for u in raw.split(",") if u.strip())
    for url in urls:
        if not re.fullmatch(r"https?://[^/\s,]+", url):
            raise ConfigError(f"ORCA_MANAGER_URL must look like http://host:port[,http://host:port...], "
                              f"got {url[:128]!r}")
    return urls


def _node_setting(parse, raw: str) -> tuple:
    """ORCA_NODE_CAPACITY or ORCA_NODE_LABELS as sorted (key, value) pairs; ConfigError if bad."""
    try:
        return tuple(sorted((parse(raw) or {}).items()))
    except ValidationError as exc:
        raise ConfigError(str(exc)) from None


def _scheduler(env: Mapping[str, str]) -> str:
    """ORCA_SCHEDULER: a strategy's name (or an alias: roundrobin, e-pvm, bin-pack)."""
    raw = env.get("ORCA_SCHEDULER", "").strip().lower()
    return _choice({"ORCA_SCHEDULER": ALIASES.get(raw, raw)}, "ORCA_SCHEDULER", DEFAULT, tuple(STRATEGIES))


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    """Variable `name` (case-insensitive) if it is one of `choices`; raise ConfigError naming it."""
    value = env.get(name, "").strip().lower() or default
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value
