"""A local stand-in for the WhatsApp Cloud API's media endpoints, run as a separate process.

Like the real API it answers ``GET /<version>/<media-id>`` with JSON (``url``, ``mime_type``,
``sha256``, ``file_size``, ``id``, ``messaging_product``) and serves the bytes at that ``url``;
both need ``Authorization: Bearer <token>``. It CHECKS the token and the paths (wrong token:
401 with Meta's error shape; unknown media id or path: 404) and records every request.

    with MediaStandIn(tmp_path, token="t0k3n") as api:
        api.add("img-1", jpeg_bytes, "image/jpeg")
        ...
        api.requests()        # [{"path", "authorization", "answer"}, ...]

Run directly: python tests/support/whatsapp_media_standin.py --port N --dir D --token T
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

VERSION = "v21.0"


def run(port: int, directory: Path, token: str) -> None:
    record = directory / "requests.jsonl"
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self, status, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, message: str) -> None:
            body = json.dumps({"error": {"message": message, "type": "OAuthException",
                                         "code": 190 if status == 401 else 100}}).encode()
            self._answer(status, body, "application/json")

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/_control/health":
                return self._answer(200, b"{}", "application/json")
            auth = self.headers.get("Authorization")
            answer = self._route(path, auth)
            with lock, record.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"at": time.time(), "path": path, "authorization": auth,
                                     "answer": answer}) + "\n")

        def _route(self, path: str, auth: str | None) -> int:
            if auth != f"Bearer {token}":
                self._error(401, "Invalid OAuth access token.")
                return 401
            parts = path.strip("/").split("/")
            if len(parts) == 2 and parts[0] == VERSION:
                media_id = parts[1]
                meta_path = directory / f"{media_id}.json"
                if not meta_path.exists():
                    self._error(404, f"Unsupported get request. Object with ID '{media_id}'")
                    return 404
                meta = json.loads(meta_path.read_text())
                host = self.headers.get("Host")
                body = json.dumps({
                    "messaging_product": "whatsapp",
                    "url": f"http://{host}/whatsapp_business/attachments/?mid={media_id}",
                    "mime_type": meta["mime_type"], "sha256": meta["sha256"],
                    "file_size": meta["file_size"], "id": media_id,
                }).encode()
                self._answer(200, body, "application/json")
                return 200
            if path == "/whatsapp_business/attachments/" and "mid=" in self.path:
                media_id = self.path.split("mid=", 1)[1].split("&", 1)[0]
                blob = directory / f"{media_id}.bin"
                if not blob.exists():
                    self._error(404, "not found")
                    return 404
                meta = json.loads((directory / f"{media_id}.json").read_text())
                self._answer(200, blob.read_bytes(), meta["mime_type"])
                return 200
            self._error(404, f"unknown path {path}")
            return 404

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


class MediaStandIn:
    def __init__(self, directory: Path, token: str = "media-token"):
        from support.net import free_port

        self.port = free_port()
        self.token = token
        self.dir = Path(directory) / f"media-{self.port}"
        self.dir.mkdir(parents=True)
        (self.dir / "requests.jsonl").touch()
        self.log = self.dir / "server.log"
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> MediaStandIn:
        from support.wait import wait_for

        env_path = str(Path(__file__).resolve().parents[2])
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--port", str(self.port), "--dir", str(self.dir),
             "--token", self.token],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
            env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        )
        wait_for(self._ready, timeout=15, message="media stand-in listening")
        return self

    def _ready(self) -> bool:
        import socket

        if self.proc.poll() is not None:
            raise RuntimeError(f"media stand-in exited: {self.log.read_text()}")
        with socket.socket() as s:
            s.settimeout(0.2)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def add(self, media_id: str, data: bytes, mime_type: str) -> None:
        (self.dir / f"{media_id}.bin").write_bytes(data)
        (self.dir / f"{media_id}.json").write_text(json.dumps({
            "mime_type": mime_type, "sha256": hashlib.sha256(data).hexdigest(),
            "file_size": len(data)}))

    def requests(self) -> list[dict]:
        lines = (self.dir / "requests.jsonl").read_text("utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    run(args.port, args.dir, args.token)


if __name__ == "__main__":
    main()
