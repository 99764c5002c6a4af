"""notification's configuration, read once from the nameko config (config.yaml + environment).

Which provider carries which (audience, logical channel), and which channel to fall back to,
are configuration; see docs/notifications.md for every key. Values may be strings (from the
environment) or native YAML/Python values (tests pass dicts).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from services.notification.domain.lifecycle import Policy
from services.notification.domain.planner import LOGICAL_CHANNELS
from services.notification.providers import FileProvider, Provider

AUDIENCES = ("complainant", "unit")
PROVIDER_NAMES = ("file", "smtp", "whatsapp_cloud", "sms_http")
DEFAULT_FALLBACK = "complainant=whatsapp>sms>email,unit=email>whatsapp"


class ConfigError(ValueError):
    pass


def _seconds(value: Any) -> float:
    return float(value)


def parse_routes(spec: Any) -> dict[tuple[str, str], str]:
    """``"file"`` or ``"*.email=smtp,complainant.whatsapp=whatsapp_cloud,*=file"`` ->
    {(audience, channel): provider}. Later, more specific entries win over ``*``."""
    routes = {(a, c): "file" for a in AUDIENCES for c in LOGICAL_CHANNELS}
    entries = [e.strip() for e in str(spec or "file").split(",") if e.strip()]
    ranked = []
    for entry in entries:
        key, sep, provider = entry.partition("=")
        if not sep:
            key, provider = "*.*", key
        audience, _, channel = (key.strip() if "." in key else f"{key.strip()}.*").partition(".")
        provider = provider.strip()
        if provider not in PROVIDER_NAMES:
            raise ConfigError(f"NOTIFICATION_PROVIDERS: unknown provider {provider!r}")
        if audience not in (*AUDIENCES, "*") or channel not in (*LOGICAL_CHANNELS, "*"):
            raise ConfigError(f"NOTIFICATION_PROVIDERS: unknown key {key!r}")
        ranked.append(((audience != "*") + (channel != "*"), audience, channel, provider))
    for _, audience, channel, provider in sorted(ranked, key=lambda r: r[0]):
        for a in AUDIENCES if audience == "*" else (audience,):
            for c in LOGICAL_CHANNELS if channel == "*" else (channel,):
                routes[(a, c)] = provider
    return routes


def parse_fallback(spec: Any) -> dict[str, tuple[str, ...]]:
    """``"complainant=whatsapp>sms>email,unit=email"`` -> {audience: channel order}."""
    chains: dict[str, tuple[str, ...]] = {a: () for a in AUDIENCES}
    for entry in str(spec or "").split(","):
        if not entry.strip():
            continue
        audience, _, chain = entry.partition("=")
        channels = tuple(c.strip() for c in chain.split(">") if c.strip())
        if audience.strip() not in AUDIENCES or any(c not in LOGICAL_CHANNELS for c in channels):
            raise ConfigError(f"NOTIFICATION_FALLBACK: cannot read {entry!r}")
        chains[audience.strip()] = channels
    return chains


@dataclass(frozen=True)
class Settings:
    policy: Policy
    routes: dict[tuple[str, str], str]
    fallback: dict[str, tuple[str, ...]]
    max_attempts: int = 5
    retry_base: timedelta = timedelta(seconds=10)
    retry_cap: timedelta = timedelta(minutes=30)
    lease: timedelta = timedelta(seconds=60)
    send_concurrency: int = 10
    provider_timeout: float = 10.0
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Settings":
        get = config.get
        settings = cls(
            policy=Policy(
                public_base_url=str(get("PUBLIC_BASE_URL", "http://localhost:8001")),
                unit_channel=str(get("NOTIFICATION_UNIT_CHANNEL", "email")),
                answer_within_working_days=int(get("NOTIFICATION_ANSWER_WORKING_DAYS", 5)),
                feedback_within_working_days=int(get("NOTIFICATION_FEEDBACK_WORKING_DAYS", 10)),
            ),
            routes=parse_routes(get("NOTIFICATION_PROVIDERS", "file")),
            fallback=parse_fallback(get("NOTIFICATION_FALLBACK", DEFAULT_FALLBACK)),
            max_attempts=int(get("NOTIFICATION_MAX_ATTEMPTS", 5)),
            retry_base=timedelta(seconds=_seconds(get("NOTIFICATION_RETRY_BASE_SECONDS", 10))),
            retry_cap=timedelta(seconds=_seconds(get("NOTIFICATION_RETRY_CAP_SECONDS", 1800))),
            lease=timedelta(seconds=_seconds(get("NOTIFICATION_LEASE_SECONDS", 60))),
            send_concurrency=int(get("NOTIFICATION_SEND_CONCURRENCY", 10)),
            provider_timeout=_seconds(get("NOTIFICATION_PROVIDER_TIMEOUT", 10)),
            raw=dict(config),
        )
        if settings.max_attempts < 1:
            raise ConfigError("NOTIFICATION_MAX_ATTEMPTS must be at least 1")
        if settings.lease.total_seconds() <= settings.provider_timeout * 3:
            # A lease shorter than the longest send would let the sweep send it again meanwhile.
            raise ConfigError("NOTIFICATION_LEASE_SECONDS must exceed 3 x the provider timeout")
        return settings

    def build_providers(self) -> dict[str, Provider]:
        """One instance of each provider in use (HTTP providers keep a pooled session)."""
        from services.notification import channels

        get = self.raw.get
        built: dict[str, Provider] = {}
        for name in sorted(set(self.routes.values())):
            if name == "file":
                built[name] = FileProvider(Path(str(get("DUMAS_VAR_DIR", "var"))) / "outbox")
            elif name == "smtp":
                built[name] = channels.SmtpProvider(
                    host=str(get("SMTP_HOST", "127.0.0.1")),
                    port=int(get("SMTP_PORT", 25)),
                    sender=str(get("SMTP_FROM", "dumas@kemenag-kepahiang.example")),
                    username=str(get("SMTP_USERNAME", "") or ""),
                    password=str(get("SMTP_PASSWORD", "") or ""),
                    security=str(get("SMTP_SECURITY", "none")),
                    timeout=self.provider_timeout,
                    max_idle=self.send_concurrency,
                )
            elif name == "whatsapp_cloud":
                built[name] = channels.WhatsAppCloudProvider(
                    base_url=str(get("WHATSAPP_BASE_URL", "https://graph.facebook.com")),
                    version=str(get("WHATSAPP_API_VERSION", "v21.0")),
                    phone_number_id=str(get("WHATSAPP_PHONE_NUMBER_ID", "")),
                    token=str(get("WHATSAPP_TOKEN", "")),
                    template=str(get("WHATSAPP_TEMPLATE", "dumas_pemberitahuan")),
                    language=str(get("WHATSAPP_TEMPLATE_LANGUAGE", "id")),
                    mode=str(get("WHATSAPP_MODE", "auto")),
                    timeout=self.provider_timeout,
                )
            elif name == "sms_http":
                built[name] = channels.HttpSmsProvider(
                    url=str(get("SMS_GATEWAY_URL", "http://127.0.0.1:9090/sms")),
                    token=str(get("SMS_GATEWAY_TOKEN", "") or ""),
                    sender=str(get("SMS_SENDER", "KEMENAG")),
                    timeout=self.provider_timeout,
                )
        return built
