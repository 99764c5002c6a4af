"""The streaming replica of docker-compose.yml's `replica` profile, run for real with this
machine's PostgreSQL binaries: a throwaway primary initialised with the deployment's init script
(deploy/postgres/init/20-replication.sh), a replica made by deploy/postgres/replica.sh, rows
streamed from one to the other, the replica read-only, and a restarted replica resuming."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from support.deploy_files import DEPLOY, run
from support.net import free_port
from support.wait import wait_for

PG_BIN = Path(run("pg_config", "--bindir").stdout.strip())


def as_postgres(*args) -> list[str]:
    """PostgreSQL refuses to run as root: CI runs as root, so drop to the postgres user."""
    command = [str(a) for a in args]
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture
def workdir():
    path = Path(tempfile.mkdtemp(prefix="dumas-replica-"))
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Server:
    def __init__(self, sockets: Path, port: int):
        self.sockets, self.port = sockets, port

    def sql(self, statement: str, check=True) -> subprocess.CompletedProcess:
        return run("psql", "-h", self.sockets, "-p", self.port, "-U", "postgres", "-d", "postgres",
                   "-Atc", statement, check=check)

    def value(self, statement: str) -> str:
        return self.sql(statement).stdout.strip()


def start_replica(workdir: Path, env: dict, port: int, log) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603
        as_postgres("env", *[f"{k}={v}" for k, v in env.items()], "bash",
                    DEPLOY / "postgres/replica.sh", "-p", port, "-k", workdir,
                    "-c", "listen_addresses=127.0.0.1"),
        stdout=log, stderr=subprocess.STDOUT)


def test_replica_streams_the_primary_and_resumes_after_a_restart(workdir):
    primary_dir, replica_dir = workdir / "primary", workdir / "replica"
    primary_port, replica_port = free_port(), free_port()
    env = {"PATH": f"{PG_BIN}:{os.environ['PATH']}"}
    subprocess.run(as_postgres("env", f"PATH={env['PATH']}", "initdb", "-D", primary_dir,  # noqa: S603
                               "-U", "postgres", "--auth-local=trust",
                               "--auth-host=scram-sha-256"), check=True, capture_output=True)
    pg_ctl = [PG_BIN / "pg_ctl", "-D", primary_dir, "-l", workdir / "primary.log", "-w"]
    options = f"-p {primary_port} -k {workdir} -c listen_addresses=127.0.0.1 -c wal_level=replica"
    subprocess.run(as_postgres(*pg_ctl, "-o", options, "start"), check=True,  # noqa: S603
                   capture_output=True)
    primary, replica = Server(workdir, primary_port), Server(workdir, replica_port)
    replica_process = None
    log = open(workdir / "replica.log", "ab")  # noqa: SIM115 - closed in finally
    try:
        # the deployment's init script, as the image runs it at the primary's first start
        out = run("bash", DEPLOY / "postgres/init/20-replication.sh", env={
            "PGDATA": str(primary_dir), "POSTGRES_USER": "postgres",
            "REPLICATION_PASSWORD": "replica-pw", "PGHOST": str(workdir),
            "PGPORT": str(primary_port)}).stdout
        assert "role replicator" in out
        subprocess.run(as_postgres(*pg_ctl, "reload"), check=True,  # noqa: S603
                       capture_output=True)
        primary.sql("CREATE TABLE complaints (code text PRIMARY KEY); "
                    "INSERT INTO complaints VALUES ('KPH-1')")

        replica_env = {**env, "PGDATA": str(replica_dir), "PRIMARY_HOST": "127.0.0.1",
                       "PRIMARY_PORT": str(primary_port), "REPLICATION_PASSWORD": "replica-pw"}
        replica_process = start_replica(workdir, replica_env, replica_port, log)
        wait_for(lambda: _answers(replica, "SELECT pg_is_in_recovery()") == "t", timeout=60,
                 message="replica up as a hot standby")
        assert replica.value("SELECT code FROM complaints") == "KPH-1"
        primary.sql("INSERT INTO complaints VALUES ('KPH-2')")
        wait_for(lambda: replica.value("SELECT count(*) FROM complaints") == "2", timeout=30,
                 message="second row streamed")
        assert primary.value("SELECT active FROM pg_replication_slots "
                             "WHERE slot_name = 'dumas_replica'") == "t"
        refused = replica.sql("INSERT INTO complaints VALUES ('X')", check=False)
        assert refused.returncode != 0 and "read-only" in refused.stderr

        # a restart keeps the copy and resumes streaming from the slot
        stop(replica_dir, replica_process)
        primary.sql("INSERT INTO complaints VALUES ('KPH-3')")
        replica_process = start_replica(workdir, replica_env, replica_port, log)
        wait_for(lambda: _answers(replica, "SELECT count(*) FROM complaints") == "3",
                 timeout=60, message="replica resumed")
        assert (workdir / "replica.log").read_text(errors="replace").count(
            "replica: copying the primary") == 1
    except BaseException:
        print((workdir / "replica.log").read_text(errors="replace"))
        raise
    finally:
        log.close()
        if replica_process is not None:
            stop(replica_dir, replica_process)
        subprocess.run(as_postgres(*pg_ctl, "-m", "fast", "stop"),  # noqa: S603
                       capture_output=True)


def stop(data_dir: Path, process: subprocess.Popen) -> None:
    """Fast shutdown of the server in `data_dir` (pg_ctl signals the postmaster itself)."""
    if process.poll() is None:
        subprocess.run(as_postgres(PG_BIN / "pg_ctl", "-D", data_dir, "-m", "fast", "-w",  # noqa: S603
                                   "stop"), capture_output=True, timeout=60)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _answers(server: Server, statement: str) -> str | None:
    result = server.sql(statement, check=False)
    return result.stdout.strip() if result.returncode == 0 else None
