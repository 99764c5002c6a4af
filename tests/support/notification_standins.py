"""Local stand-ins for notification's providers, run as separate processes (so they behave the
same for an in-test nameko container and for services run as processes, and so eventlet's
monkey-patching of the test process does not touch aiosmtpd's asyncio loop).

- SMTP: a real SMTP server (aiosmtpd) on loopback that records every message it accepts.
- HTTP: one server standing in for the WhatsApp Cloud API and the SMS gateway. It CHECKS what it
  receives (path, bearer token, JSON shape) and answers from a script: 200, 429 with
  Retry-After, 500, 400, or hang (hold the request until released). Every request is recorded.

    with HttpStandIn(tmp_path, token="t0k3n") as api:
        api.script([{"status": 429, "retry_after": 1}, {"status": 200}])
        ...
        api.requests()          # what arrived, with what the stand-in answered

Run directly: python tests/support/notification_standins.py smtp|http --port N --record FILE
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import threading
import time
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

WHATSAPP_PATH = "/v21.0/1234567890/messages"
SMS_PATH = "/sms/send"


# --------------------------------------------------------------------------- the servers


def _check_whatsapp(body: dict) -> str | None:
    if body.get("messaging_product") != "whatsapp":
        return "messaging_product must be whatsapp"
    if not str(body.get("to", "")).isdigit():
        return "to must be digits in international format"
    kind = body.get("type")
    if kind == "text":
        text = body.get("text", {}).get("body")
        return None if isinstance(text, str) and 0 < len(text) <= 4096 else "bad text.body"
    if kind == "template":
        template = body.get("template", {})
        if not template.get("name") or not template.get("language", {}).get("code"):
            return "template needs name and language.code"
        for component in template.get("components", []):
            for p in component.get("parameters", []):
                if "\n" in p.get("text", ""):
                    return "template parameters may not contain new lines"
        return None
    return f"unsupported type {kind!r}"


def _check_sms(body: dict) -> str | None:
    if not str(body.get("to", "")).startswith("+") or not body.get("message"):
        return "to (+E.164) and message are required"
    return None


def accepted(number: int) -> dict:
    """A success answer both the Cloud API client and the SMS client can read."""
    return {"messages": [{"id": f"wamid.{number}"}], "id": f"sms-{number}"}


def run_http(port: int, record: Path, token: str) -> None:
    # path ("*" for any) -> {"script": [answers in order], "default": answer}
    state = {"*": {"script": [], "default": {"status": 200}}}
    lock = threading.Lock()
    release = threading.Event()
    counter = {"n": 0}

    def write(entry: dict) -> None:
        with lock, record.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _json(self, status: int, body: dict, headers: dict | None = None) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self):
            if self.path == "/_control/health":
                return self._json(200, {"ok": True})
            return self._json(404, {})

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/_control/script":
                spec = json.loads(raw)
                with lock:
                    state[spec.get("path", "*")] = {
                        "script": list(spec.get("script", [])),
                        "default": spec.get("default", {"status": 200}),
                    }
                release.clear()
                return self._json(200, {"ok": True})
            if self.path == "/_control/release":
                release.set()
                return self._json(200, {"ok": True})
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            problem = None
            if self.headers.get("Authorization") != f"Bearer {token}":
                problem = "wrong or missing bearer token"
            elif not isinstance(body, dict):
                problem = "body is not a JSON object"
            elif self.path == WHATSAPP_PATH:
                problem = _check_whatsapp(body)
            elif self.path == SMS_PATH:
                problem = _check_sms(body)
            else:
                problem = f"unknown path {self.path}"
            with lock:
                plan = state.get(self.path, state["*"])
                step = plan["script"].pop(0) if plan["script"] else dict(plan["default"])
                counter["n"] += 1
                number = counter["n"]
            entry = {"n": number, "at": time.time(), "path": self.path, "body": body,
                     "authorization": self.headers.get("Authorization"), "problem": problem}
            if problem:
                write({**entry, "answer": 400})
                return self._json(400, {"error": {"code": 100, "message": problem}})
            if step.get("hang"):
                write({**entry, "answer": "hang"})
                if release.wait(timeout=step.get("hang_seconds", 120)):
                    write({"n": number, "at": time.time(), "path": self.path, "body": body,
                           "answer": "released"})
                return self._json(200, accepted(number))
            status = int(step.get("status", 200))
            write({**entry, "answer": status})
            headers = {}
            if step.get("retry_after") is not None:
                headers["Retry-After"] = str(step["retry_after"])
            if status == 200:
                return self._json(200, accepted(number))
            return self._json(status, {"error": {"code": status * 10, "message": "scripted"}},
                              headers)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


def run_smtp(port: int, record: Path, reject: str) -> None:
    import asyncio

    from aiosmtpd.controller import Controller

    class Recorder:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if reject and reject.split("=", 1)[0] in address:
                return reject.split("=", 1)[1]
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            entry = {
                "at": time.time(),
                "mail_from": envelope.mail_from,
                "peer": list(session.peer)[:2],  # the client's (address, port): its connection
                "rcpt_tos": envelope.rcpt_tos,
                "data": base64.b64encode(envelope.original_content or envelope.content).decode(),
            }
            with record.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry) + "\n")
            return "250 Message accepted for delivery"

    controller = Controller(Recorder(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        asyncio.run(asyncio.Event().wait())
    finally:
        controller.stop()


# --------------------------------------------------------------------------- test-side handles


class _Process:
    mode = ""

    def __init__(self, directory: Path, *extra: str):
        from support.net import free_port

        self.port = free_port()
        self.record = Path(directory) / f"{self.mode}-{self.port}.jsonl"
        self.record.touch()
        self.log = Path(directory) / f"{self.mode}-{self.port}.log"
        self._extra = extra
        self.proc: subprocess.Popen | None = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        self.proc = subprocess.Popen(
            [sys.executable, __file__, self.mode, "--port", str(self.port),
             "--record", str(self.record), *self._extra],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, env=env,
        )
        from support.wait import wait_for

        wait_for(self._ready, timeout=15, message=f"{self.mode} stand-in listening")

    def _ready(self) -> bool:
        import socket

        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.mode} stand-in exited: {self.log.read_text()}")
        with socket.socket() as s:
            s.settimeout(0.2)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def entries(self) -> list[dict]:
        lines = self.record.read_text("utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


class SmtpStandIn(_Process):
    """aiosmtpd on 127.0.0.1; ``reject="someone@=550 No such user"`` refuses that recipient."""

    mode = "smtp"

    def __init__(self, directory: Path, reject: str = ""):
        super().__init__(directory, *(["--reject", reject] if reject else []))

    def messages(self) -> list[tuple[dict, object]]:
        """(envelope, parsed email.message.EmailMessage) for every accepted message."""
        return [
            (e, message_from_bytes(base64.b64decode(e["data"]), policy=policy.default))
            for e in self.entries()
        ]


class HttpStandIn(_Process):
    """The WhatsApp Cloud API (``WHATSAPP_PATH``) and the SMS gateway (``SMS_PATH``)."""

    mode = "http"

    def __init__(self, directory: Path, token: str = "test-token"):
        self.token = token
        super().__init__(directory, "--token", token)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def sms_url(self) -> str:
        return self.base_url + SMS_PATH

    def _control(self, path: str, body: dict | None = None) -> None:
        import requests

        requests.post(self.base_url + path, json=body or {}, timeout=5).raise_for_status()

    def script(self, steps: list[dict], default: dict | None = None, path: str = "*") -> None:
        """Answers for the next requests (to ``path``, or any) in order, then ``default``."""
        self._control("/_control/script", {"path": path, "script": steps,
                                           "default": default or {"status": 200}})

    def release(self) -> None:
        """Let hanging requests finish (answered 200)."""
        self._control("/_control/release")

    def requests(self, path: str | None = None) -> list[dict]:
        """Every request received (a held request once, when it arrived)."""
        return [e for e in self.entries()
                if e["answer"] != "released" and (path is None or e["path"] == path)]

    def delivered(self, path: str | None = None) -> list[dict]:
        """Messages that reached the person: answered 200, or held and then released (the
        provider went on and delivered it even though our client may be gone)."""
        return [e for e in self.entries()
                if e["answer"] in (200, "released") and (path is None or e["path"] == path)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("smtp", "http"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--token", default="test-token")
    parser.add_argument("--reject", default="")
    args = parser.parse_args()
    if args.mode == "smtp":
        run_smtp(args.port, args.record, args.reject)
    else:
        run_http(args.port, args.record, args.token)


if __name__ == "__main__":
    main()
