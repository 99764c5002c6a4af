"""Helpers for the deployment tests: paths of the deploy/ files and the real tools that check
them (docker compose, hadolint, nginx, kubernetes-validate), installed by requirements-dev.txt
and .ci/run."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def load_script(relative: str):
    """Import a deploy/ script (not a package) as a module."""
    path = DEPLOY / relative
    spec = importlib.util.spec_from_file_location(f"deploy_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(*args, env=None, check=True, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(  # noqa: S603
        [str(a) for a in args], capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})}, **kw,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{args[0]} failed ({result.returncode}):\n{result.stdout}\n"
                             f"{result.stderr}")
    return result


def render_template(text: str, values: dict[str, str]) -> str:
    """What the nginx image's envsubst does: replace ${VAR} of the given variables only."""
    return re.sub(r"\$\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), text)


def nginx_conf(server_conf: Path, workdir: Path) -> Path:
    """A complete nginx.conf around a rendered server block, runnable without root paths."""
    for sub in ("logs", "tmp"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
    # which upstream answered each request: the route tests read it back (probe_routes)
    log_format dumas_probe '$request_uri $upstream_addr $status';
    access_log {workdir}/logs/access.log dumas_probe;
    client_body_temp_path {workdir}/tmp/body;
    proxy_temp_path {workdir}/tmp/proxy;
    fastcgi_temp_path {workdir}/tmp/fastcgi;
    uwsgi_temp_path {workdir}/tmp/uwsgi;
    scgi_temp_path {workdir}/tmp/scgi;
    include {server_conf};
}}
""")
    return conf


def ingress_as_nginx(ingress: dict, upstreams: dict[str, str], listen: str) -> str:
    """An nginx server block doing what an Ingress controller does with `ingress`'s rules.

    As ingress-nginx translates them: an Exact path is `location = path`; a Prefix path is
    `location = path` plus `location path/` (nginx picks the longest prefix, as the Ingress API
    picks the longest path, and exact matches first). Anything no rule matches gets the
    controller's default backend: a 404 that reaches no service."""
    lines = [f"server {{ listen {listen}; server_name _;"]
    seen = set()
    for rule in ingress["spec"]["rules"]:
        for item in rule["http"]["paths"]:
            service = item["backend"]["service"]
            target = upstreams[service["name"]]
            path = item["path"]
            locations = [f"= {path}"]
            if item["pathType"] == "Prefix":
                locations.append(path.rstrip("/") + "/")
            for location in locations:
                assert location not in seen, f"two rules for {location}"
                seen.add(location)
                lines.append(f"    location {location} {{ proxy_pass http://{target}; }}")
    lines.append("    location / { return 404; }")
    lines.append("}")
    return "\n".join(lines) + "\n"


class RunningNginx:
    """nginx (the real binary) on a config, with the upstream of every request readable."""

    def __init__(self, conf: Path, workdir: Path, port: int):
        self.workdir, self.base = workdir, f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(  # noqa: S603
            [NGINX, "-c", str(conf), "-p", str(workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)

    def upstreams_of(self, paths: list[str], session) -> dict[str, tuple[str, int]]:
        """GET every path once through nginx: {path: (upstream address or "-", status)}."""
        from support.wait import wait_for

        log = self.workdir / "logs" / "access.log"
        start = log.stat().st_size if log.exists() else 0
        for index, path in enumerate(paths):
            session.get(f"{self.base}{path}?probe={index}", timeout=10, allow_redirects=False)

        def logged():
            lines = log.read_text()[start:].splitlines() if log.exists() else []
            found = {}
            for line in lines:
                uri, upstream, status = line.rsplit(" ", 2)
                if "?probe=" in uri:
                    found[int(uri.rsplit("?probe=", 1)[1])] = (upstream, int(status))
            return found if len(found) == len(paths) else None

        found = wait_for(logged, timeout=10, message="nginx logged every probe")
        return {path: found[index] for index, path in enumerate(paths)}
