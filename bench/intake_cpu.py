"""intake's `POST /api/v1/complaints` handler alone: CPU per complaint, client and PostgreSQL
backend, A/B of code trees (session 8, docs/performance.md "Session 8: intake").

    .venv/bin/python bench/intake_cpu.py --tree /tmp/old --tree . [--rounds 5]
        [--complaints 600] [--warm 100] [--green] [--idempotent]

Each round runs one child process per tree, in alternating order (A,B then B,A), so both are
measured in the same minutes. A child (PYTHONPATH=its tree) migrates a fresh intake database
and calls `IntakeService.submit` (with its `endpoint` wrapper, its `Database` dependency and
`ChannelTools` set up as the container would, no container) on werkzeug requests with bodies
like `make bench`'s: a different citizen and address each time, so the rate limit and the
duplicate check run as in production (`--idempotent`: each with an Idempotency-Key). The
requests are built before the measured loop. Per complaint: the child's CPU
(time.process_time), the CPU of the database's PostgreSQL backends (bench.hop_cpu.BackendCpu,
/proc/<pid>/schedstat, so the server must run on this machine) and wall time; after `--warm`
unmeasured complaints (the connection pool, statement caches, plans). `--green`: eventlet's
monkey patching first, as nameko's runner does (psycopg2 then waits for each round trip
through eventlet's hub). The outbox relay is not run: its rows stay unpublished. Medians of
the rounds per tree are printed last.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

if __name__ == "__main__" and "--child" in sys.argv and "--green" in sys.argv:
    import eventlet

    eventlet.monkey_patch()

ROOT = Path(__file__).resolve().parents[1]
DESCRIPTION = ("Pendaftaran nikah di KUA sudah dua minggu belum diproses, padahal berkas sudah "
               "lengkap dan sudah diserahkan ke petugas.")
KECAMATAN = ("17.08.01", "17.08.02", "17.08.03", "17.08.04", "17.08.05", "17.08.06")


def child(complaints: int, warm: int, idempotent: bool) -> dict:
    import tempfile
    import time
    import uuid

    from cryptography.fernet import Fernet
    from sqlalchemy import create_engine
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    from bench.hop_cpu import BackendCpu, _provider
    from bench.infra import PG_SERVER, Databases, Vhost
    from services.cli import SERVICES_DIR
    from services.intake.channels import ChannelTools
    from services.intake.db import metadata
    from services.intake.service import IntakeService
    from shared.migrate import upgrade

    run = uuid.uuid4().hex[:6]

    def request(i: int) -> Request:
        body = {
            "category": "nikah_rujuk",
            "kecamatan_code": KECAMATAN[i % len(KECAMATAN)],
            "description": f"{DESCRIPTION} Nomor berkas {run}-{i}.",
            "complainant": {"name": "Warga Uji", "email": f"warga.{run}.{i}@example.com"},
        }
        headers = {"X-Forwarded-For": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"}
        if idempotent:
            headers["Idempotency-Key"] = f"kunci-{run}-{i}"
        builder = EnvironBuilder(path="/api/v1/complaints", method="POST",
                                 data=json.dumps(body), content_type="application/json",
                                 headers=headers)
        try:
            return Request(builder.get_environ())
        finally:
            builder.close()

    vhost, dbs = Vhost("dumas_intakecpu"), Databases()
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT", pool_size=1)
    var = tempfile.TemporaryDirectory(prefix="dumas_intakecpu_")
    provider = None
    try:
        url = dbs.create("intake_cpu")
        upgrade(SERVICES_DIR / "intake" / "migrations", url)
        config = {"AMQP_URI": vhost.uri, "DUMAS_VAR_DIR": var.name, "DATABASE_URL": url,
                  "TRUST_PROXY": "1", "PUBLIC_BASE_URL": "http://localhost:8001",
                  "INTAKE_DATA_KEY": Fernet.generate_key().decode()}
        provider, db = _provider(metadata, config, "intake")
        intake = IntakeService()
        intake.db, intake.config = db, config
        intake.channels = ChannelTools(config)
        backend = BackendCpu(admin, url.rsplit("/", 1)[1])
        requests = [request(i) for i in range(warm + complaints)]

        def submit(req):
            response = intake.submit(req)
            assert response.status_code == 201, response.get_data(as_text=True)

        for req in requests[:warm]:
            submit(req)
        b0, c0, w0 = backend(), time.process_time(), time.perf_counter()
        for req in requests[warm:]:
            submit(req)
        c1, w1, b1 = time.process_time(), time.perf_counter(), backend()
        return {"client_us": round(1e6 * (c1 - c0) / complaints, 1),
                "backend_us": round(1e6 * (b1 - b0) / complaints, 1),
                "wall_us": round(1e6 * (w1 - w0) / complaints, 1)}
    finally:
        if provider is not None:
            if provider.relay is not None:
                provider.relay._close()
            provider.engine.dispose()
        admin.dispose()
        dbs.close()
        vhost.close()
        var.cleanup()


def run_child(tree: str, args) -> dict:
    # This driver in every child (an older tree may have none); the tree comes first on the
    # path, so its services, shared and bench modules are the ones measured.
    command = [sys.executable, str(ROOT / "bench" / "intake_cpu.py"), "--child",
               "--complaints", str(args.complaints), "--warm", str(args.warm)]
    command += ["--green"] * args.green + ["--idempotent"] * args.idempotent
    env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve())}
    out = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True,  # noqa: S603
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(args) -> dict:
    results: dict[str, list[dict]] = {tree: [] for tree in args.tree}
    for n in range(args.rounds):
        order = args.tree if n % 2 == 0 else list(reversed(args.tree))
        for tree in order:
            outcome = run_child(tree, args)
            results[tree].append(outcome)
            print(json.dumps({"round": n, "tree": tree, **outcome}), flush=True)
    return {tree: {key: statistics.median(r[key] for r in rounds)
                   for key in ("client_us", "backend_us", "wall_us")}
            for tree, rounds in results.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", default=[])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--complaints", type=int, default=600)
    parser.add_argument("--warm", type=int, default=100)
    parser.add_argument("--green", action="store_true")
    parser.add_argument("--idempotent", action="store_true")
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.complaints, args.warm, args.idempotent)))
    else:
        print(json.dumps({"medians": main(args)}, indent=1))
