"""Two replicas of every service as processes (the e2e harness's ServiceCluster, twice, on the
same broker vhost and databases), and what the scale-out tests read from them."""

import contextlib
import re
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from e2e.harness import ServiceCluster
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

KECAMATAN = ("17.08.05", "17.08.01", "17.08.02", "17.08.03", "17.08.04", "17.08.06")


@contextlib.contextmanager
def replicas(env: dict, log_dir, count: int = 2):
    """`count` full sets of the four services; migrations run once, before the first set."""
    clusters = []
    try:
        for index in range(count):
            cluster = ServiceCluster(env, log_dir / f"replica-{index}", unique_ports=True)
            clusters.append(cluster)
            cluster.start(migrate=index == 0)
        yield clusters
    except BaseException:
        for cluster in clusters:
            print(cluster.logs())
        raise
    finally:
        for cluster in clusters:
            cluster.stop()


def submit_all(clusters, bodies, threads: int = 8) -> list[str]:
    """POST every complaint, alternating between the intake replicas; their tracking codes."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=threads)
    session.mount("http://", adapter)

    def post(item):
        index, body = item
        url = clusters[index % len(clusters)].url("intake", "/api/v1/complaints")
        for _ in range(10):  # a channel retries a 503 (nothing was committed), bounded
            response = session.post(url, json=body, timeout=30)
            if response.status_code != 503:
                break
            time.sleep(float(response.headers.get("Retry-After", "1")))
        assert response.status_code == 201, response.text
        return response.json()["tracking_code"]

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(post, enumerate(bodies)))


def counter_total(metrics_text: str, name: str) -> float:
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.e+]+)$", re.M)
    return sum(float(v) for v in pattern.findall(metrics_text))


class Databases:
    def __init__(self, urls: dict[str, str]):
        self.engines = {s: create_engine(u, pool_size=1, max_overflow=0, pool_pre_ping=True)
                        for s, u in urls.items()}

    def scalar(self, service: str, sql: str, **params):
        # the test's own reads ride out a PostgreSQL that is briefly out of connections
        for attempt in range(20):
            try:
                with self.engines[service].connect() as conn:
                    return conn.execute(text(sql), params).scalar()
            except OperationalError:
                if attempt == 19:
                    raise
                time.sleep(0.5)

    def execute(self, service: str, sql: str, **params) -> int:
        with self.engines[service].begin() as conn:
            return conn.execute(text(sql), params).rowcount

    def close(self):
        for engine in self.engines.values():
            engine.dispose()
