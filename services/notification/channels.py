"""The real providers: SMTP e-mail, WhatsApp Business Cloud API, an HTTP SMS gateway.

Error mapping, the same for every provider (handlers decide what to do with it):
- timeouts, connection errors, HTTP 5xx, 408 and 429, SMTP 4xx -> TemporaryProviderError
  (with ``retry_after`` from a ``Retry-After`` header);
- any other HTTP 4xx, SMTP 5xx -> PermanentProviderError (retrying cannot help).

Every call is bounded twice: the client's own socket timeouts and an overall eventlet.Timeout
(raised as a TemporaryProviderError, never as eventlet's BaseException). Addresses never appear
in logs or error messages; HTTP error bodies are reduced to the provider's error code.
"""

import logging
import re
import smtplib
import ssl
import time
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr

import eventlet
import requests

from services.notification.domain.render import RenderedMessage
from services.notification.providers import (
    PermanentProviderError,
    Provider,
    ProviderResult,
    TemporaryProviderError,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
_DIGITS = re.compile(r"\D+")


class ProviderTimeout(TemporaryProviderError):
    pass


def _bounded(seconds: float, what: str):
    # eventlet.Timeout is a BaseException unless given an exception to raise: with one, a
    # hanging provider becomes an ordinary temporary failure of this delivery.
    return eventlet.Timeout(seconds, ProviderTimeout(f"{what}: no answer within {seconds:g} s"))


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or garbled."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def international_number(address: str) -> str:
    """``+62 812-3456-7890`` -> ``6281234567890`` (the Cloud API and most gateways want digits)."""
    digits = _DIGITS.sub("", address)
    if digits.startswith("0"):
        digits = "62" + digits[1:]
    if not 8 <= len(digits) <= 15:
        raise PermanentProviderError("not a usable phone number")
    return digits


class HttpProvider(Provider):
    """Shared HTTP behaviour: one pooled session per provider, bounded calls, status mapping."""

    def __init__(
        self, *, timeout: float = DEFAULT_TIMEOUT, session: requests.Session | None = None
    ):
        self.timeout = timeout
        self.http = session or requests.Session()

    def _post(self, url: str, body: dict, headers: dict) -> dict:
        try:
            with _bounded(self.timeout + 1, self.name):
                response = self.http.post(
                    url, json=body, headers=headers, timeout=(min(5.0, self.timeout), self.timeout)
                )
        except requests.Timeout as exc:
            raise ProviderTimeout(f"{self.name}: timed out") from exc
        except requests.RequestException as exc:
            raise TemporaryProviderError(f"{self.name}: {type(exc).__name__}") from exc
        status = response.status_code
        if 200 <= status < 300:
            try:
                return response.json()
            except ValueError:
                return {}
        detail = f"{self.name}: HTTP {status}{_error_code(response)}"
        if status in (408, 429) or status >= 500:
            raise TemporaryProviderError(
                detail, retry_after=retry_after_seconds(response.headers.get("Retry-After"))
            )
        raise PermanentProviderError(detail)


def _error_code(response: requests.Response) -> str:
    """The provider's machine error code, never the body (it may echo the recipient)."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    if isinstance(error, dict):
        code = error.get("code")
        sub = error.get("error_subcode")
        return f" (code {code}{'/' + str(sub) if sub else ''})" if code is not None else ""
    return ""


class WhatsAppCloudProvider(HttpProvider):
    """WhatsApp Business Cloud API: ``POST {base}/{version}/{phone_number_id}/messages``.

    WhatsApp allows a free-form text only within 24 hours of the person's last message to us;
    outside it a pre-approved template is required. ``mode``:
    - ``auto`` (default): text when the reply window is open, otherwise the template;
    - ``template``: always the template (units, who never write to the business number);
    - ``text``: always text (only for test numbers / sandboxes).
    The template (default ``dumas_pemberitahuan``, language ``id``) has one body parameter
    ``{{1}}``: the one-line SMS rendering of the message, which already carries the tracking
    code and link (template parameters may not contain line breaks).
    """

    name = "whatsapp_cloud"

    def __init__(
        self, *, base_url: str, version: str, phone_number_id: str, token: str,
        template: str = "dumas_pemberitahuan", language: str = "id", mode: str = "auto",
        timeout: float = DEFAULT_TIMEOUT, session: requests.Session | None = None,
    ):
        super().__init__(timeout=timeout, session=session)
        if mode not in ("auto", "template", "text"):
            raise ValueError(f"WhatsApp mode must be auto, template or text, not {mode!r}")
        self.url = f"{base_url.rstrip('/')}/{version.strip('/')}/{phone_number_id}/messages"
        self.token = token
        self.template = template
        self.language = language
        self.mode = mode

    def body(self, address: str, message: RenderedMessage, reply_window_open: bool) -> dict:
        to = international_number(address)
        use_text = self.mode == "text" or (self.mode == "auto" and reply_window_open)
        if use_text:
            return {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": "text",
                "text": {"preview_url": True, "body": message.text[:4096]},
            }
        return {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "template",
            "template": {
                "name": self.template,
                "language": {"code": self.language},
                "components": [
                    {"type": "body", "parameters": [{"type": "text", "text": message.sms}]}
                ],
            },
        }

    def send(self, delivery_id, channel, address, message, *, reply_window_open=False):
        body = self.body(address, message, reply_window_open)
        answer = self._post(self.url, body, {"Authorization": f"Bearer {self.token}"})
        try:
            message_id = answer["messages"][0]["id"]
        except (KeyError, IndexError, TypeError):
            message_id = ""
        return ProviderResult(provider_message_id=str(message_id or delivery_id))


class HttpSmsProvider(HttpProvider):
    """A generic HTTP SMS gateway: ``POST {url}`` with JSON
    ``{"to", "message", "sender", "reference"}`` and an optional bearer token. ``reference`` is
    the delivery id, so a gateway that deduplicates on it never sends a retried SMS twice."""

    name = "sms_http"

    def __init__(
        self, *, url: str, token: str = "", sender: str = "KEMENAG",
        timeout: float = DEFAULT_TIMEOUT, session: requests.Session | None = None,
    ):
        super().__init__(timeout=timeout, session=session)
        self.url = url
        self.token = token
        self.sender = sender

    def send(self, delivery_id, channel, address, message, *, reply_window_open=False):
        body = {
            "to": "+" + international_number(address),
            "message": message.sms,
            "sender": self.sender,
            "reference": delivery_id,
        }
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        answer = self._post(self.url, body, headers)
        message_id = (answer.get("id") or answer.get("message_id")) if answer else ""
        return ProviderResult(provider_message_id=str(message_id or delivery_id))


class SmtpProvider(Provider):
    """E-mail over SMTP: multipart/alternative (plain text + HTML), UTF-8, proper headers.

    ``Message-ID`` is derived from the delivery id, so a message resent after a crash carries
    the same id and mail systems that deduplicate on it show it once.
    """

    name = "smtp"

    def __init__(
        self, *, host: str, port: int = 25, sender: str,
        sender_name: str = "Dumas Kemenag Kepahiang",
        username: str = "", password: str = "", security: str = "none",
        timeout: float = DEFAULT_TIMEOUT, message_id_domain: str | None = None,
        max_idle: int = 10, idle_seconds: float = 30.0,
    ):
        if security not in ("none", "starttls", "ssl"):
            raise ValueError(f"SMTP security must be none, starttls or ssl, not {security!r}")
        self.host, self.port = host, int(port)
        self.sender, self.sender_name = sender, sender_name
        self.username, self.password = username, password
        self.security = security
        self.timeout = timeout
        self.domain = message_id_domain or sender.rpartition("@")[2] or "dumas.local"
        # Connections kept open between sends (connect, EHLO, STARTTLS and AUTH once, not per
        # message): at most `max_idle`, each dropped after `idle_seconds` unused (servers
        # usually close idle sessions after a minute or more).
        self.max_idle = max_idle
        self.idle_seconds = idle_seconds
        self._idle: list[tuple[smtplib.SMTP, float]] = []

    def build(self, delivery_id: str, address: str, message: RenderedMessage,
              now: datetime | None = None) -> EmailMessage:
        mail = EmailMessage(policy=SMTP)
        mail["From"] = formataddr((self.sender_name, self.sender))
        try:
            mail["To"] = Address(addr_spec=address)
        except (ValueError, IndexError) as exc:
            raise PermanentProviderError("not a usable e-mail address") from exc
        mail["Subject"] = message.subject
        mail["Date"] = format_datetime(now or datetime.now(UTC))
        mail["Message-ID"] = f"<{delivery_id}@{self.domain}>"
        mail["Auto-Submitted"] = "auto-generated"
        mail["X-Auto-Response-Suppress"] = "All"
        mail["Content-Language"] = "id"
        mail.set_content(message.text, charset="utf-8")
        mail.add_alternative(message.html, subtype="html", charset="utf-8")
        return mail

    def send(self, delivery_id, channel, address, message, *, reply_window_open=False):
        mail = self.build(delivery_id, address, message)
        try:
            with _bounded(self.timeout * 3, self.name):
                self._deliver(mail, address)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise _smtp_error(min(codes) if codes else 550, "recipient refused") from exc
        except smtplib.SMTPResponseException as exc:
            raise _smtp_error(exc.smtp_code, "rejected") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TemporaryProviderError(f"smtp: {type(exc).__name__}") from exc
        return ProviderResult(provider_message_id=mail["Message-ID"])

    def _deliver(self, mail: EmailMessage, address: str) -> None:
        """Send on an idle connection kept from an earlier send, or on a new one.

        A kept connection the server has closed meanwhile fails at its first command (RSET),
        before anything of this message was sent: it is dropped and the message goes on a new
        connection. Connections come back to the idle list only after a clean send.
        """
        client = self._take_idle()
        if client is not None:
            try:
                client.rset()  # a fresh transaction, and a liveness check
            except (smtplib.SMTPException, OSError):
                client.close()
                client = None
        if client is None:
            client = self._connect()
        try:
            client.send_message(mail, from_addr=self.sender, to_addrs=[address])
        except smtplib.SMTPRecipientsRefused:
            self._give_back(client)  # the session is fine; only that recipient was refused
            raise
        except BaseException:
            client.close()  # state unknown (timeout, refusal mid-way): never reuse it
            raise
        self._give_back(client)

    def _connect(self) -> smtplib.SMTP:
        if self.security == "ssl":
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if self.username:
                client.login(self.username, self.password)
        except BaseException:
            client.close()
            raise
        return client

    def _take_idle(self) -> smtplib.SMTP | None:
        now = time.monotonic()
        while self._idle:
            client, since = self._idle.pop()
            if now - since < self.idle_seconds:
                return client
            client.close()  # idle too long: the server has probably dropped it
        return None

    def _give_back(self, client: smtplib.SMTP) -> None:
        if len(self._idle) < self.max_idle:
            self._idle.append((client, time.monotonic()))
        else:
            _quietly_close(client)  # a clean session: say goodbye

    def close(self) -> None:
        """QUIT every idle connection (the service calls it when it stops)."""
        while self._idle:
            _quietly_close(self._idle.pop()[0])


def _quietly_close(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def _smtp_error(code: int, what: str) -> Exception:
    if 400 <= code < 500:
        return TemporaryProviderError(f"smtp: {what} ({code})")
    return PermanentProviderError(f"smtp: {what} ({code})")

