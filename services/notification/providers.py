"""Providers hand a rendered message to the outside world (SMTP, SMS gateway, WhatsApp, files).

The sender maps a logical channel to a provider by configuration and decides, from the error
class, whether to retry (TemporaryProviderError) or record a failure (PermanentProviderError).
Addresses are personal data: they go to the provider and nowhere else (not in logs, not in
exception messages).
"""

import itertools
import json
import logging
import os
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from services.notification.domain.render import RenderedMessage
from shared.offload import off_the_hub

log = logging.getLogger(__name__)


# Delivery ids become file names and provider references: no separators, no leading dot.
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class ProviderError(Exception):
    """The provider did not accept the message."""


class TemporaryProviderError(ProviderError):
    """Worth retrying later: timeouts, rate limits, a full disk, a gateway outage.

    ``retry_after``: seconds the provider asked us to wait (HTTP 429/503 ``Retry-After``).
    """

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentProviderError(ProviderError):
    """Retrying cannot help: an invalid address, a rejected message."""


@dataclass(frozen=True)
class ProviderResult:
    provider_message_id: str


class Provider(ABC):
    #: Short name recorded in notification_sent / notification_failed events (max 32 chars).
    name: str

    @abstractmethod
    def send(
        self, delivery_id: str, channel: str, address: str, message: RenderedMessage,
        *, reply_window_open: bool = False,
    ) -> ProviderResult:
        """Hand over one delivery.

        ``reply_window_open``: the person wrote to us on this channel recently enough for a
        free-form reply (WhatsApp's 24-hour customer service window).

        Where the provider supports it, sending the same delivery_id again must not produce a
        second message (a redelivered event replans the same ids).
        """


class FileProvider(Provider):
    """Writes each delivery to ``<outbox_dir>/<delivery_id>.json``: for development and tests.

    The file appears atomically (temp file in the same directory, then os.replace), so a reader
    never sees half a message, and sending a delivery again replaces its file.
    """

    name = "file"

    def __init__(self, outbox_dir: Path | str, *, clock: Callable[[], datetime] | None = None):
        self.outbox_dir = Path(outbox_dir)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._dir_ready = False  # created at the first send (and again if it disappears)
        # Temporary names unique to this provider instance (and process, and host): no random
        # name generation and retry loop (tempfile.mkstemp) per message.
        self._tmp_prefix = uuid.uuid4().hex[:12]
        self._tmp_counter = itertools.count()

    def path_for(self, delivery_id: str) -> Path:
        if not _DELIVERY_ID.match(delivery_id):
            raise PermanentProviderError(f"delivery id not usable as a file name: {delivery_id!r}")
        return self.outbox_dir / f"{delivery_id}.json"

    def send(
        self, delivery_id: str, channel: str, address: str, message: RenderedMessage,
        *, reply_window_open: bool = False,
    ) -> ProviderResult:
        target = self.path_for(delivery_id)
        if not address:
            raise PermanentProviderError(f"delivery {delivery_id}: no address")
        document = {
            "delivery_id": delivery_id,
            "channel": channel,
            "to": address,
            "subject": message.subject,
            "text": message.text,
            "html": message.html,
            "sms": message.sms,
            "created_at": self._clock().isoformat(),
        }
        payload = json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")
        try:
            if not self._dir_ready:
                self.outbox_dir.mkdir(parents=True, exist_ok=True)
                self._dir_ready = True
            try:
                off_the_hub(self._write_atomically, target, payload)
            except FileNotFoundError:  # the directory was removed since: create it again
                self.outbox_dir.mkdir(parents=True, exist_ok=True)
                off_the_hub(self._write_atomically, target, payload)
        except OSError as exc:
            raise TemporaryProviderError(
                f"delivery {delivery_id}: cannot write to file outbox ({exc.strerror})"
            ) from exc
        # DEBUG: the delivery is logged at INFO once marked sent (handlers.mark_sent, one line
        # per batch), so an operator still traces it without two JSON lines per complaint.
        log.debug("delivery %s written to file outbox (channel %s)", delivery_id, channel)
        return ProviderResult(provider_message_id=target.name)

    def _write_atomically(self, target: Path, payload: bytes) -> None:
        # The temporary name starts with a dot and does not end in .json, so a reader globbing
        # "*.json" never picks it up.
        tmp = self.outbox_dir / (
            f".{target.stem}.{self._tmp_prefix}{next(self._tmp_counter)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
