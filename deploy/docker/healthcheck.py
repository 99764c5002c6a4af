"""Docker HEALTHCHECK of a Dumas container: GET /health of the service it runs.

Exit 0 when /health answers 200 (or when the container runs a one-shot command, not a
service), 1 otherwise. Standard library only; runs in well under a second.
"""

import os
import sys
import urllib.error
import urllib.request

PORTS = {"intake": 8001, "routing": 8002, "notification": 8003, "reporting": 8004}


def service_of_pid1() -> str | None:
    service = os.environ.get("DUMAS_SERVICE")
    if service in PORTS:
        return service
    try:
        with open("/proc/1/cmdline", "rb") as fh:
            argv = fh.read().decode(errors="replace").split("\0")
    except OSError:
        return None
    for arg in argv:
        for name in PORTS:
            if arg in (name, f"services.{name}.service"):
                return name
    return None


def main() -> int:
    service = service_of_pid1()
    if service is None:
        return 0
    address = os.environ.get(f"{service.upper()}_HTTP_ADDRESS", f"0.0.0.0:{PORTS[service]}")
    port = address.rpartition(":")[2]
    url = f"http://127.0.0.1:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - fixed local URL
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{service} unhealthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
