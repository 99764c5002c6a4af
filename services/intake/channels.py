"""The per-process tools intake's channels share, as one nameko dependency: rate limiter, partner
API keys, the personal-data box (encryption key), the QR secret and the page templates.

Secrets come from the service config / environment:
- ``INTAKE_DATA_KEY``: Fernet key (``python -c "from cryptography.fernet import Fernet;
  print(Fernet.generate_key().decode())"``) sealing confidential personal data. Without it, a
  development key is created once in ``<DUMAS_VAR_DIR>/intake-data-key`` (mode 0600).
- ``INTAKE_QR_SECRET``: signs poster tokens; default derived from the session secret.
- ``WHATSAPP_APP_SECRET`` / ``WHATSAPP_VERIFY_TOKEN``: Meta webhook secrets.
- ``WHATSAPP_TOKEN`` (+ ``WHATSAPP_BASE_URL``, ``WHATSAPP_API_VERSION``): Cloud API media
  downloads; ``DUMAS_STORAGE_BACKEND`` and ``DUMAS_S3_*``: where attachments are stored.
"""

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from nameko.extensions import DependencyProvider

from services.intake.attachments import CloudApi
from services.intake.domain.apikeys import ApiKeys
from services.intake.domain.ratelimit import Limit, RateLimiter
from services.intake.domain.sealing import PersonalDataBox, new_key
from shared.auth import session_secret
from shared.db import prepared_statements
from shared.storage import blob_store_from_config, link_secret
from shared.throttle import FailureBuckets
from shared.web import client_address

TEMPLATES = Path(__file__).parent / "templates"

DEFAULTS = {
    "RATE_LIMIT_IP": "20/20",  # per IP: 20 at once, 20 a minute
    "RATE_LIMIT_PHONE": "10/10",  # per WhatsApp sender
    "RATE_LIMIT_LOOKUP": "120/600",  # tracking-code lookups per IP: 120 at once, 600 a minute
    "TRACKING_MISSES_PER_IP": "10/60",  # unknown tracking codes per IP: 10 per 60 seconds
}


def _setting(config, name, default=None):
    value = config.get(name)
    if value in (None, ""):
        value = os.environ.get(name, default)
    return value


def data_key(config) -> bytes:
    configured = _setting(config, "INTAKE_DATA_KEY")
    if configured:
        return configured.encode()
    path = Path(_setting(config, "DUMAS_VAR_DIR", "var")) / "intake-data-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".intake-data-key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(new_key())
        try:
            os.link(tmp, path)  # atomic; another process may have been first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_bytes().strip()


class ChannelTools:
    def __init__(self, config):
        self.limiter = RateLimiter()
        self.ip_limit = Limit.parse(_setting(config, "RATE_LIMIT_IP", DEFAULTS["RATE_LIMIT_IP"]))
        self.phone_limit = Limit.parse(
            _setting(config, "RATE_LIMIT_PHONE", DEFAULTS["RATE_LIMIT_PHONE"])
        )
        self.lookup_limit = Limit.parse(
            _setting(config, "RATE_LIMIT_LOOKUP", DEFAULTS["RATE_LIMIT_LOOKUP"])
        )
        self.lookup_misses = FailureBuckets.parse(
            _setting(config, "TRACKING_MISSES_PER_IP", DEFAULTS["TRACKING_MISSES_PER_IP"])
        )
        self.api_keys = ApiKeys(_setting(config, "INTAKE_API_KEYS", ""))
        self.box = PersonalDataBox(data_key(config))
        qr = _setting(config, "INTAKE_QR_SECRET")
        self.qr_secret = (
            qr.encode() if qr else hmac.new(session_secret(), b"qr-posters",
                                            hashlib.sha256).digest()
        )
        self.whatsapp_secret = _setting(config, "WHATSAPP_APP_SECRET", "")
        self.whatsapp_verify_token = _setting(config, "WHATSAPP_VERIFY_TOKEN", "")
        self.trust_proxy = str(_setting(config, "TRUST_PROXY", "0")) == "1"
        # Whether the submit and status statements may be PREPAREd on PostgreSQL connections
        # (off behind a transaction-mode pooler): read once, a process keeps the setting it
        # started with.
        self.prepared = prepared_statements()
        # Evidence attachments (docs/attachments.md): the blob store, download-link key, and
        # the Cloud API's media endpoints for WhatsApp photos, documents and voice notes.
        self.blobs = blob_store_from_config(config)
        self.link_secret = link_secret("intake")
        self.cloud_api = CloudApi(
            base_url=_setting(config, "WHATSAPP_BASE_URL", "https://graph.facebook.com"),
            version=_setting(config, "WHATSAPP_API_VERSION", "v21.0"),
            token=_setting(config, "WHATSAPP_TOKEN", ""),
        )
        self.templates = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(("html",), default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def client_ip(self, request) -> str:
        return client_address(request, self.trust_proxy)


class Channels(DependencyProvider):
    def setup(self):
        self.tools = ChannelTools(dict(self.container.config))

    def get_dependency(self, worker_ctx):
        return self.tools
