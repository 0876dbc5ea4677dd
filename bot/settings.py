"""One frozen Settings, read from config/settings.yaml with environment overrides (an explicit, testable mapping)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

DEFAULT_CONFIG = Path("config/settings.yaml")


class SettingsError(Exception):
    """A setting has a value the bot cannot use."""


class Secret:
    """A string that never shows itself in repr, str or a log line."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that needs it."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    """Everything the bot is configured with."""

    telegram_token: Secret = field(default_factory=lambda: Secret(""))
    telegram_api_url: str = "https://api.telegram.org"
    content_dir: Path = Path("content")
    content_history_dir: Path = Path("data/content-history")
    watch_content: bool = True
    watch_sources: bool = True  # the scheduler leader polls content/sources.yaml's feeds for review candidates
    log_level: str = "INFO"
    admin_ids: frozenset[int] = frozenset()
    contact: str = ""  # how users reach the operator (@username, email or URL), shown by /about
    timezone: str = "Asia/Hong_Kong"
    database_url: str = "sqlite:///data/bot.sqlite3"
    tick_seconds: float = 15.0
    messages_per_second: float = 30.0
    group_messages_per_minute: int = 20
    private_chat_interval: float = 1.0
    max_in_flight: int = 64
    lease_seconds: float = 120.0
    delivery_retention_days: int = 30  # finished deliveries are deleted after this many days (0: kept forever)
    digest_lookback_days: int = 7
    candidate_expiry_days: int = 14  # review candidates nobody decided on expire after this many days (0: never)
    digest_spotlight: bool = True
    webhook_url: str = ""
    webhook_secret: Secret = field(default_factory=lambda: Secret(""))
    webhook_listen: str = "0.0.0.0"
    port: int = 8080
    shared_rate_limit: bool = True  # on PostgreSQL, replicas share one sending ceiling (bot/store/cluster.py)
    slack_bot_token: Secret = field(default_factory=lambda: Secret(""))  # xoxb-...
    slack_app_token: Secret = field(default_factory=lambda: Secret(""))  # xapp-...: Socket Mode
    slack_signing_secret: Secret = field(default_factory=lambda: Secret(""))  # HTTP mode, with WEBHOOK_URL
    slack_admin_ids: frozenset[str] = frozenset()  # Slack user ids (U0123ABC) of the bot's admins on Slack
    slack_api_url: str = "https://slack.com/api/"
    # Slack publishes no figure for chat.postMessage's workspace-wide limit: a careful default, raise it if Slack
    # allows your workspace more (each channel gets at most one message a second anyway).
    slack_messages_per_second: float = 10.0
    metrics_enabled: bool = True  # /metrics on the webhook server (and on METRICS_PORT when set)
    metrics_port: int = 0  # a server of its own for /metrics (long polling has no webhook server); 0: none
    metrics_listen: str = "0.0.0.0"
    metrics_token: Secret = field(default_factory=lambda: Secret(""))  # bearer token for scrapes from elsewhere
    log_format: str = "text"  # or "json": one JSON object per line

    @property
    def webhook_mode(self) -> bool:
        """With WEBHOOK_URL set the bot serves Telegram's webhook on PORT instead of long polling."""
        return bool(self.webhook_url) and bool(self.telegram_token)

    @property
    def slack_socket_mode(self) -> bool:
        """With SLACK_BOT_TOKEN and SLACK_APP_TOKEN Slack's events come over Socket Mode (no public URL)."""
        return bool(self.slack_bot_token) and bool(self.slack_app_token)

    @property
    def slack_http_mode(self) -> bool:
        """Without an app token, SLACK_SIGNING_SECRET with WEBHOOK_URL: Slack posts to /slack/events."""
        return (bool(self.slack_bot_token) and not self.slack_app_token and bool(self.slack_signing_secret)
                and bool(self.webhook_url))

    @property
    def slack(self) -> bool:
        """Whether the Slack front end runs."""
        return self.slack_socket_mode or self.slack_http_mode

    @property
    def console_mode(self) -> bool:
        """With no Telegram token and no Slack configuration the bot runs in the terminal (the embedded default)."""
        return not self.telegram_token and not self.slack


# setting name -> (environment variable, parser)
ENVIRONMENT: dict[str, str] = {
    "telegram_token": "TELEGRAM_BOT_TOKEN",
    "telegram_api_url": "TELEGRAM_API_URL",
    "content_dir": "CONTENT_DIR",
    "content_history_dir": "CONTENT_HISTORY_DIR",
    "watch_content": "WATCH_CONTENT",
    "watch_sources": "WATCH_SOURCES",
    "log_level": "LOG_LEVEL",
    "admin_ids": "BOT_ADMIN_IDS",
    "contact": "BOT_CONTACT",
    "timezone": "BOT_TIMEZONE",
    "database_url": "DATABASE_URL",
    "tick_seconds": "DIGEST_TICK_SECONDS",
    "messages_per_second": "SEND_MESSAGES_PER_SECOND",
    "group_messages_per_minute": "SEND_GROUP_MESSAGES_PER_MINUTE",
    "private_chat_interval": "SEND_PRIVATE_CHAT_INTERVAL",
    "max_in_flight": "SEND_MAX_IN_FLIGHT",
    "lease_seconds": "SEND_LEASE_SECONDS",
    "delivery_retention_days": "DELIVERY_RETENTION_DAYS",
    "digest_lookback_days": "DIGEST_LOOKBACK_DAYS",
    "candidate_expiry_days": "CANDIDATE_EXPIRY_DAYS",
    "digest_spotlight": "DIGEST_SPOTLIGHT",
    "webhook_url": "WEBHOOK_URL",
    "webhook_secret": "WEBHOOK_SECRET",
    "webhook_listen": "WEBHOOK_LISTEN",
    "port": "PORT",
    "shared_rate_limit": "SHARED_RATE_LIMIT",
    "slack_bot_token": "SLACK_BOT_TOKEN",
    "slack_app_token": "SLACK_APP_TOKEN",
    "slack_signing_secret": "SLACK_SIGNING_SECRET",
    "slack_admin_ids": "SLACK_ADMIN_IDS",
    "slack_api_url": "SLACK_API_URL",
    "slack_messages_per_second": "SLACK_MESSAGES_PER_SECOND",
    "metrics_enabled": "METRICS_ENABLED",
    "metrics_port": "METRICS_PORT",
    "metrics_listen": "METRICS_LISTEN",
    "metrics_token": "METRICS_TOKEN",
    "log_format": "LOG_FORMAT",
}

# settings read from the environment only
SECRETS = frozenset({"telegram_token", "webhook_secret", "metrics_token", "slack_bot_token", "slack_app_token",
                     "slack_signing_secret"})

# numeric settings: name -> (type, smallest allowed value)
_NUMBERS: dict[str, tuple[type, float]] = {
    "tick_seconds": (float, 0.01), "messages_per_second": (float, 0.0), "group_messages_per_minute": (int, 0),
    "private_chat_interval": (float, 0.0), "max_in_flight": (int, 1), "lease_seconds": (float, 1.0),
    "digest_lookback_days": (int, 0), "port": (int, 1), "delivery_retention_days": (int, 0),
    "candidate_expiry_days": (int, 0), "slack_messages_per_second": (float, 0.0), "metrics_port": (int, 0),
}


def load_settings(config_file: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the config file (if present), then apply environment overrides; raise SettingsError on bad values."""
    path = config_file or DEFAULT_CONFIG
    raw: dict[str, Any] = {}
    if path.is_file():
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise SettingsError(f"{path}: must be a mapping of settings")
        unknown = (set(loaded) - set(ENVIRONMENT)) | (SECRETS & set(loaded))
        if unknown:
            raise SettingsError(f"{path}: unknown or misplaced settings: {', '.join(sorted(unknown))} "
                                "(tokens and secrets such as TELEGRAM_BOT_TOKEN, WEBHOOK_SECRET, METRICS_TOKEN and "
                                "SLACK_BOT_TOKEN belong in the environment, never in a file)")
        raw.update(loaded)
    env = environ if environ is not None else {}
    for name, variable in ENVIRONMENT.items():
        if env.get(variable, "").strip():
            raw[name] = env[variable].strip()
    return _build(raw)


def _build(raw: Mapping[str, Any]) -> Settings:
    admin_ids = raw.get("admin_ids", [])
    if isinstance(admin_ids, str):
        admin_ids = [part for part in admin_ids.replace(" ", "").split(",") if part]
    try:
        admins = frozenset(int(value) for value in admin_ids)
    except (TypeError, ValueError):
        raise SettingsError(f"admin_ids / BOT_ADMIN_IDS must be Telegram user ids, got {admin_ids!r}") from None
    timezone = str(raw.get("timezone", "Asia/Hong_Kong"))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"timezone / BOT_TIMEZONE: unknown IANA timezone {timezone!r}") from None
    api_url = str(raw.get("telegram_api_url", "https://api.telegram.org")).rstrip("/")
    if not api_url.startswith(("http://", "https://")):
        raise SettingsError(f"telegram_api_url / TELEGRAM_API_URL must be an http(s) URL, got {api_url!r}")
    level = str(raw.get("log_level", "INFO")).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise SettingsError(f"log_level / LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    numbers: dict[str, Any] = {}
    for name, (kind, smallest) in _NUMBERS.items():
        if name in raw:
            try:
                numbers[name] = kind(raw[name])
            except (TypeError, ValueError):
                raise SettingsError(f"{name} / {ENVIRONMENT[name]} must be a number, got {raw[name]!r}") from None
            if numbers[name] < smallest:
                raise SettingsError(f"{name} / {ENVIRONMENT[name]} must be at least {smallest}")
    log_format = str(raw.get("log_format", "text")).strip().lower()
    if log_format not in ("text", "json"):
        raise SettingsError(f"log_format / LOG_FORMAT must be text or json, got {log_format!r}")
    if numbers.get("metrics_port", 0) > 65535:
        raise SettingsError("metrics_port / METRICS_PORT must be a port number (1-65535, or 0 for none)")
    webhook_url = str(raw.get("webhook_url", "")).strip()
    if webhook_url and not webhook_url.startswith("https://"):
        raise SettingsError(f"webhook_url / WEBHOOK_URL must be an https:// URL (Telegram requires TLS), "
                            f"got {webhook_url!r}")
    if webhook_url and numbers.get("metrics_port", 0) == numbers.get("port", Settings.port):
        raise SettingsError("metrics_port / METRICS_PORT must differ from PORT: the webhook server on PORT serves "
                            "/metrics already (leave METRICS_PORT at 0)")
    secret = str(raw.get("webhook_secret", ""))
    if secret and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
        raise SettingsError("WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
    slack_admins = raw.get("slack_admin_ids", [])
    if isinstance(slack_admins, str):
        slack_admins = [part for part in slack_admins.replace(" ", "").split(",") if part]
    slack_admin_ids = frozenset(str(value).strip() for value in slack_admins)
    bad = sorted(value for value in slack_admin_ids if not re.fullmatch(r"[UW][A-Z0-9]{2,31}", value))
    if bad:
        raise SettingsError(f"slack_admin_ids / SLACK_ADMIN_IDS must be Slack user ids such as U0123ABC, got {bad}")
    slack_api_url = str(raw.get("slack_api_url", "https://slack.com/api/")).rstrip("/") + "/"
    if not slack_api_url.startswith(("http://", "https://")):
        raise SettingsError(f"slack_api_url / SLACK_API_URL must be an http(s) URL, got {slack_api_url!r}")
    return Settings(
        slack_bot_token=Secret(str(raw.get("slack_bot_token", ""))),
        slack_app_token=Secret(str(raw.get("slack_app_token", ""))),
        slack_signing_secret=Secret(str(raw.get("slack_signing_secret", ""))),
        slack_admin_ids=slack_admin_ids,
        slack_api_url=slack_api_url,
        webhook_url=webhook_url,
        webhook_secret=Secret(secret),
        webhook_listen=str(raw.get("webhook_listen", "0.0.0.0")),
        digest_spotlight=_flag(raw, "digest_spotlight"),
        watch_content=_flag(raw, "watch_content"),
        watch_sources=_flag(raw, "watch_sources"),
        shared_rate_limit=_flag(raw, "shared_rate_limit"),
        metrics_enabled=_flag(raw, "metrics_enabled"),
        metrics_listen=str(raw.get("metrics_listen", "0.0.0.0")),
        metrics_token=Secret(str(raw.get("metrics_token", ""))),
        log_format=log_format,
        content_history_dir=Path(str(raw.get("content_history_dir", "data/content-history"))),
        **numbers,
        telegram_token=Secret(str(raw.get("telegram_token", ""))),
        telegram_api_url=api_url,
        content_dir=Path(str(raw.get("content_dir", "content"))),
        log_level=level,
        admin_ids=admins,
        contact=str(raw.get("contact", "")).strip(),
        timezone=timezone,
        database_url=str(raw.get("database_url", "sqlite:///data/bot.sqlite3")),
    )


def _flag(raw: Mapping[str, Any], name: str) -> bool:
    value = str(raw.get(name, True)).lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise SettingsError(f"{name} / {ENVIRONMENT[name]} must be true or false, got {value!r}")
    return value in ("true", "1", "yes")
