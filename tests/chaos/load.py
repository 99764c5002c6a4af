"""A steady stream of complaints through every intake channel, each retried the way its real
client would retry, with every answer recorded against what was going on at that moment.

Channels (what a real client does when it gets no answer or a 5xx):
- web:      `POST /api/v1/complaints` without an API key; retried as is (intake links a repeat
            from the same contact with the same text to the first complaint: 200 `duplicate`);
            anonymous ones carry an Idempotency-Key, since nothing else identifies a repeat.
- form:     the HTML form `POST /` (double-submit cookie), always with a contact; 303 to
            /terkirim/<code>.
- partner:  `POST /api/v1/complaints` with X-API-Key and an Idempotency-Key kept across retries.
- whatsapp: the signed Cloud API webhook; Meta redelivers the same message id until a 2xx.
- amqp:     `complaint_submitted` on `channels.events` with publisher confirms, the same
            message_id on every try (services/intake/channel_client.py).
- ptsp:     the PTSP desk: an officer signed in, `POST /ptsp`; 303 to the receipt.

Every complaint carries a unique marker in its description (`[uji CHS<seed>-<n>]`) so the
verifier can find it in intake's records whatever happened to the answer.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

from services.intake.channel_client import ChannelPublisher

CHANNELS = ("web", "form", "partner", "whatsapp", "amqp", "ptsp")
# channel as intake records it
RECORDED_CHANNEL = {"web": "web", "form": "web", "partner": "rumah_digital",
                    "whatsapp": "whatsapp", "amqp": "amqp", "ptsp": "ptsp"}
KECAMATAN = ("17.08.05", "17.08.02")  # Merigi (kua-merigi, pilot), Ujan Mas (desk)
HTTP_TIMEOUT = 15
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
TEXTS = (
    "Pendaftaran nikah kami sudah dua minggu belum diproses petugas, mohon dibantu.",
    "Sertifikat tanah wakaf masjid kami belum terbit padahal berkas sudah lengkap.",
    "Petugas meminta biaya tambahan di luar ketentuan saat pencatatan nikah.",
    "Jadwal bimbingan perkawinan belum diumumkan padahal akad tinggal sebulan lagi.",
)


@dataclass
class Submission:
    n: int
    channel: str
    marker: str
    contact: str | None  # "email" | "phone" | None (anonymous)
    attempts: list = field(default_factory=list)  # (phase, answer) per try
    outcome: str = "pending"  # accepted | refused | gave_up
    tracking_code: str | None = None
    accepted_phase: str | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome == "accepted"


class Phase:
    """What the fault driver is doing now, stamped on every answer."""

    def __init__(self):
        self._value = "normal"
        self._lock = threading.Lock()

    def set(self, value: str) -> None:
        with self._lock:
            self._value = value

    def get(self) -> str:
        with self._lock:
            return self._value


class Refused(Exception):
    """A permanent answer (4xx other than 429): the complaint will never be accepted."""


class Load:
    def __init__(self, *, cluster, amqp_uri: str, seed: int, rate: float, phase: Phase,
                 secrets_: dict, give_up: float, workers: int = 24):
        self.cluster = cluster
        self.amqp_uri = amqp_uri
        self.seed = seed
        self.rate = rate
        self.phase = phase
        self.secrets = secrets_
        self.give_up = give_up
        self.submissions: list[Submission] = []
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="load")
        self._stop = threading.Event()
        self._aborted = threading.Event()
        self._thread: threading.Thread | None = None
        self._desk_lock = threading.Lock()
        self._desk: tuple[str, str] | None = None  # (session cookie, csrf)
        self._futures = []

    # ------------------------------------------------------------------ driving

    def start(self) -> None:
        self._thread = threading.Thread(target=self._feed, name="load-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop submitting new complaints and wait for the ones in flight to settle."""
        self._stop.set()
        if self._thread:
            self._thread.join()
        for future in self._futures:
            future.result()
        self._pool.shutdown(wait=True)

    def abort(self) -> None:
        """Stop at once (the run broke down): no waiting for complaints in flight."""
        self._stop.set()
        self._aborted.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _feed(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        for n in itertools.count(1):
            if self._stop.is_set():
                return
            channel = CHANNELS[(n - 1) % len(CHANNELS)]
            contact = ("email", "phone", None)[n % 7 % 3] if channel != "whatsapp" else "phone"
            if channel in ("form", "ptsp") and contact is None:
                # a form re-sent after a lost answer is linked to the first only through its
                # contact: an anonymous one would be a second complaint (docs/reliability.md)
                contact = "email"
            sub = Submission(n, channel, f"[uji CHS{self.seed}-{n:05d}]", contact)
            self.submissions.append(sub)
            try:
                self._futures.append(self._pool.submit(self._deliver, sub))
            except RuntimeError:  # aborted: the pool is shut
                return
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)

    def _deliver(self, sub: Submission) -> None:
        send = getattr(self, f"_send_{sub.channel}")
        deadline = time.monotonic() + self.give_up
        state: dict = {}
        backoff = 0.25
        while True:
            phase = self.phase.get()
            try:
                answer, retry_after, code = send(sub, state)
            except Refused as exc:
                sub.attempts.append((phase, str(exc)))
                sub.outcome = "refused"
                return
            except Exception as exc:  # no answer: connection refused/reset, timeout, broker
                sub.attempts.append((phase, f"error:{type(exc).__name__}"))
                retry_after = None
            else:
                sub.attempts.append((phase, answer))
                if code is not None:
                    sub.outcome, sub.tracking_code, sub.accepted_phase = "accepted", code, phase
                    return
            if time.monotonic() >= deadline or self._aborted.is_set():
                sub.outcome = "gave_up"
                return
            wait = min(retry_after, 5.0) if retry_after else backoff
            backoff = min(backoff * 2, 3.0)
            time.sleep(wait)

    # ------------------------------------------------------------------ complaint data

    def _body(self, sub: Submission) -> dict:
        text = f"{TEXTS[sub.n % len(TEXTS)]} {sub.marker}"
        body = {"category": "nikah_rujuk", "kecamatan_code": KECAMATAN[sub.n % 2],
                "description": text, "confidentiality": "public"}
        if sub.contact is None:
            body["confidentiality"] = "anonymous"
        elif sub.contact == "email":
            body["complainant"] = {"name": "Pelapor Uji",
                                   "email": f"p{self.seed}x{sub.n}@example.com"}
        else:
            body["complainant"] = {"name": "Pelapor Uji", "phone": self._phone(sub)}
        return body

    def _phone(self, sub: Submission) -> str:
        return f"0813{(self.seed * 100_000 + sub.n) % 100_000_000:08d}"

    @staticmethod
    def _http_answer(response: requests.Response, accepted_code):
        """(answer, retry_after, tracking code or None); Refused on a permanent 4xx."""
        status = response.status_code
        retry_after = response.headers.get("Retry-After")
        retry_after = float(retry_after) if retry_after and retry_after.isdigit() else None
        if 400 <= status < 500 and status != 429:
            raise Refused(f"{status}:{response.text[:200]}")
        code = accepted_code(response) if status < 400 else None
        return status, retry_after, code

    # ------------------------------------------------------------------ channels

    def _send_web(self, sub, state):
        # With a contact, retried as is (intake links the repeat to the first complaint);
        # anonymous, with an Idempotency-Key, the only way a retry can be recognised.
        headers = {}
        if sub.contact is None:
            headers["Idempotency-Key"] = state.setdefault(
                "key", f"chaos-web-{self.seed}-{sub.n}-{secrets.token_hex(4)}")
        response = requests.post(self.cluster.url("intake", "/api/v1/complaints"),
                                 json=self._body(sub), headers=headers, timeout=HTTP_TIMEOUT)
        return self._http_answer(response, lambda r: r.json()["tracking_code"])

    def _send_partner(self, sub, state):
        key = state.setdefault("key", f"chaos-{self.seed}-{sub.n}-{secrets.token_hex(4)}")
        response = requests.post(
            self.cluster.url("intake", "/api/v1/complaints"), json=self._body(sub),
            headers={"X-API-Key": self.secrets["api_key"], "Idempotency-Key": key},
            timeout=HTTP_TIMEOUT,
        )
        return self._http_answer(response, lambda r: r.json()["tracking_code"])

    def _form_fields(self, sub) -> dict:
        body = self._body(sub)
        person = body.get("complainant") or {}
        return {"category": body["category"], "kecamatan_code": body["kecamatan_code"],
                "description": body["description"], "confidentiality": body["confidentiality"],
                "name": person.get("name", ""), "email": person.get("email", ""),
                "phone": person.get("phone", "")}

    def _send_form(self, sub, state):
        token = state.setdefault("token", secrets.token_urlsafe(24))
        response = requests.post(
            self.cluster.url("intake", "/"), data={**self._form_fields(sub), "csrf": token},
            cookies={"dumas_form": token}, allow_redirects=False, timeout=HTTP_TIMEOUT,
        )
        return self._http_answer(response, _code_from_location("/terkirim/"))

    def _send_whatsapp(self, sub, state):
        payload = _whatsapp_text(f"wamid.chaos{self.seed}x{sub.n}", "62" + self._phone(sub)[1:],
                                 self._body(sub)["description"])
        raw = json.dumps(payload).encode()
        signature = hmac.new(self.secrets["whatsapp_app_secret"].encode(), raw,
                             hashlib.sha256).hexdigest()
        response = requests.post(
            self.cluster.url("intake", "/webhooks/whatsapp"), data=raw,
            headers={"Content-Type": "application/json",
                     "X-Hub-Signature-256": f"sha256={signature}"},
            timeout=HTTP_TIMEOUT,
        )

        def accepted(r):
            outcomes = r.json().get("outcomes", [])
            if outcomes in (["complaint"], ["duplicate_delivery"]):
                return "(whatsapp)"
            raise Refused(f"whatsapp outcome {outcomes}")

        return self._http_answer(response, accepted)

    def _send_amqp(self, sub, state):
        body = self._body(sub)
        data = {"message_id": f"chaos-{self.seed}-{sub.n}", "channel": "amqp",
                "desa_code": None, "unit_code": None, **body}
        with ChannelPublisher(self.amqp_uri) as publisher:
            publisher.submit(data)
        return "confirmed", None, "(amqp)"

    def _send_ptsp(self, sub, state):
        cookie, csrf = self._desk_session()
        response = requests.post(
            self.cluster.url("intake", "/ptsp"), data={**self._form_fields(sub), "csrf": csrf},
            cookies={"dumas_session": cookie}, allow_redirects=False, timeout=HTTP_TIMEOUT,
        )
        if response.status_code == 303 and "/ptsp/masuk" in response.headers.get("Location", ""):
            with self._desk_lock:
                self._desk = None  # signed out (should not happen): sign in again
            return "303:signed-out", None, None
        return self._http_answer(response, _code_from_location("/ptsp/tanda-terima/"))

    def _desk_session(self) -> tuple[str, str]:
        with self._desk_lock:
            if self._desk is None:
                self._desk = self._sign_in()
            return self._desk

    def _sign_in(self) -> tuple[str, str]:
        http = requests.Session()
        token = secrets.token_urlsafe(24)
        http.cookies.set("dumas_form", token)
        response = http.post(
            self.cluster.url("intake", "/ptsp/masuk"),
            data={"csrf": token, "username": self.secrets["desk_user"],
                  "password": self.secrets["desk_password"]},
            allow_redirects=False, timeout=HTTP_TIMEOUT,
        )
        if response.status_code != 303:
            raise RuntimeError(f"desk sign-in answered {response.status_code}")
        page = http.get(self.cluster.url("intake", "/ptsp"), timeout=HTTP_TIMEOUT)
        match = CSRF_FIELD.search(page.text)
        if page.status_code != 200 or not match:
            raise RuntimeError(f"desk form answered {page.status_code}")
        return http.cookies.get("dumas_session"), match.group(1)


def _code_from_location(prefix: str):
    def code(response):
        location = response.headers.get("Location", "")
        if response.status_code != 303 or prefix not in location:
            raise Refused(f"{response.status_code} to {location!r}")
        return location.split(prefix, 1)[1].split("?", 1)[0]

    return code


def _whatsapp_text(message_id: str, sender: str, text: str) -> dict:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "6281100000001",
                         "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Pelapor Uji"}, "wa_id": sender}],
            "messages": [{"from": sender, "id": message_id, "timestamp": str(int(time.time())),
                          "type": "text", "text": {"body": text}}],
        }}]}],
    }
