"""CPU of one transaction through an ORM Session vs a plain Connection (issue 8, session 7).

    PYTHONPATH=. .venv/bin/python bench/uow_cpu.py [--n 3000] [--pg URL] [--no-sqlite]

Every service wraps each transaction in `shared.db.UnitOfWork`. For PostgreSQL (database
`test` on 127.0.0.1:5432 by default) and a SQLite file, with the engine of `make_engine`, this
prints the CPU (time.process_time, this process only: the machine is shared) of one
transaction of 1 statement (an INSERT with parameters) and of 3 (INSERT, UPDATE, SELECT),
done

- ``session``: sessionmaker() -> session.execute(...) -> commit() -> close(), what UnitOfWork
  did before session 7;
- ``connection``: engine.connect() -> conn.execute(...) -> commit() -> close();
- ``uow``: `shared.db.UnitOfWork` as imported (so `PYTHONPATH=<old tree>` measures the old one);

and the per-statement difference (session.execute vs conn.execute in one open transaction).
Runs are interleaved (session, connection, uow, session, ...) and the best of --rounds is kept.
"""

import argparse
import os
import tempfile
import time

from sqlalchemy import Column, Integer, MetaData, String, Table, select, update
from sqlalchemy.orm import sessionmaker

from shared.db import UnitOfWork, make_engine

PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"

metadata = MetaData()
items = Table(
    f"uow_cpu_bench_{os.getpid()}",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("n", Integer, nullable=False),
)
INSERT = items.insert()
UPDATE = update(items).where(items.c.id == 1).values(n=items.c.n + 1)
SELECT = select(items.c.n).where(items.c.id == 1)
PARAMS = {"name": "pengaduan", "n": 1}


def tx_session(factory, three):
    s = factory()
    try:
        s.execute(INSERT, PARAMS)
        if three:
            s.execute(UPDATE)
            s.execute(SELECT).scalar()
        s.commit()
    finally:
        s.close()


def tx_connection(engine, three):
    c = engine.connect()
    try:
        c.execute(INSERT, PARAMS)
        if three:
            c.execute(UPDATE)
            c.execute(SELECT).scalar()
        c.commit()
    finally:
        c.close()


def tx_uow(factory, three):
    with UnitOfWork(factory, None, None) as uow:
        uow.session.execute(INSERT, PARAMS)
        if three:
            uow.session.execute(UPDATE)
            uow.session.execute(SELECT).scalar()
        uow.commit()


def cpu_us(fn, n):
    t = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t) / n * 1e6


def stmt_us(opener, n):
    """CPU per UPDATE inside one open transaction (rolled back)."""
    s = opener()
    try:
        s.execute(UPDATE)
        t = time.process_time()
        for _ in range(n):
            s.execute(UPDATE)
        return (time.process_time() - t) / n * 1e6
    finally:
        s.rollback()
        s.close()


def run(label, url, n, rounds):
    engine = make_engine(url)
    metadata.create_all(engine)
    try:
        factory = sessionmaker(engine, expire_on_commit=False)
        with engine.begin() as c:
            c.execute(INSERT, PARAMS)  # id 1 for UPDATE/SELECT
        cases = {}
        for three in (False, True):
            k = "3 stmts" if three else "1 stmt "
            cases[f"{k} session"] = lambda three=three: tx_session(factory, three)
            cases[f"{k} connection"] = lambda three=three: tx_connection(engine, three)
            cases[f"{k} uow"] = lambda three=three: tx_uow(factory, three)
        for fn in cases.values():  # warm up: pool, statement cache
            cpu_us(fn, max(50, n // 20))
        best = {k: float("inf") for k in cases}
        for _ in range(rounds):
            for k, fn in cases.items():
                best[k] = min(best[k], cpu_us(fn, n))
        per_stmt = {"session": float("inf"), "connection": float("inf")}
        for _ in range(rounds):
            per_stmt["session"] = min(per_stmt["session"], stmt_us(factory, n))
            per_stmt["connection"] = min(per_stmt["connection"], stmt_us(engine.connect, n))
        print(f"== {label} ({url.split('@')[-1]}), n={n}, best of {rounds}: CPU us per transaction")
        for k, v in best.items():
            print(f"  {k:24s} {v:8.1f}")
        for k in ("1 stmt ", "3 stmts"):
            conn = best[k + " connection"]
            print(f"  {k} session - connection: {best[k + ' session'] - conn:8.1f}"
                  f"   uow - connection: {best[k + ' uow'] - conn:8.1f}")
        print(f"  per statement (UPDATE in an open tx): session {per_stmt['session']:.1f}, "
              f"connection {per_stmt['connection']:.1f}, "
              f"difference {per_stmt['session'] - per_stmt['connection']:.1f}")
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pg", default=PG_URL)
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--no-pg", action="store_true")
    a = ap.parse_args()
    if not a.no_pg:
        run("postgresql", a.pg, a.n, a.rounds)
    if not a.no_sqlite:
        with tempfile.TemporaryDirectory() as d:
            run("sqlite", f"sqlite:///{d}/uow_cpu.db", a.n, a.rounds)


if __name__ == "__main__":
    main()
