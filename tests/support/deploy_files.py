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
    access_log {workdir}/logs/access.log;
    client_body_temp_path {workdir}/tmp/body;
    proxy_temp_path {workdir}/tmp/proxy;
    fastcgi_temp_path {workdir}/tmp/fastcgi;
    uwsgi_temp_path {workdir}/tmp/uwsgi;
    scgi_temp_path {workdir}/tmp/scgi;
    include {server_conf};
}}
""")
    return conf
