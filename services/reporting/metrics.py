"""reporting's own Prometheus metrics."""

from prometheus_client import Counter, Histogram

STATS_QUERY_SECONDS = Histogram(
    "dumas_reporting_stats_query_seconds",
    "Time to compute one statistics answer from the counter tables, by view.",
    ["view"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5),
)
STATS_PLANS = Counter(
    "dumas_reporting_stats_queries_total",
    "Statistics answers by plan: 'rollups' (pre-aggregated, fast at any size) or 'cube' (a unit "
    "or kecamatan with other filters, read from the daily cube through its indexes).",
    ["plan"],
)
EXPORTS = Counter(
    "dumas_reporting_exports_total",
    "Statistics exports served, by format (csv, xlsx, pdf).",
    ["format"],
)
SIGN_INS = Counter(
    "dumas_reporting_sign_ins_total",
    "Sign-in attempts on the reporting pages, by outcome.",
    ["outcome"],
)
