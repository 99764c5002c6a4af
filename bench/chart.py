"""A PNG of a benchmark run: throughput side by side, and latency at each offered load.

    .venv/bin/python -m bench.chart [bench/results.json]   # writes var/bench/results.png
"""

import json
import sys
from pathlib import Path


def chart(results: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    bars = {
        "baseline\n3-hop": results.get("baseline", {}).get("completed_per_s"),
        "Dumas\nmax load": results.get("dumas", {}).get("max_load", {}).get("completed_per_s"),
        "Dumas\nburst drain": results.get("dumas", {}).get("burst", {}).get("completed_per_s"),
    }
    bars = {k: v for k, v in bars.items() if v is not None}
    colors = {"baseline\n3-hop": "#999999", "Dumas\nmax load": "#2b7bba",
              "Dumas\nburst drain": "#6fa8dc"}
    left.bar(list(bars), list(bars.values()), color=[colors[k] for k in bars])
    for i, v in enumerate(bars.values()):
        left.annotate(f"{v:g}", (i, v), ha="center", va="bottom")
    left.set_ylabel("completed flows per second")
    left.set_title("Throughput (same run, same machine)")

    rows = results.get("dumas", {}).get("latency", [])
    rates = [r["offered_per_s"] for r in rows]
    for key, style in (("p50_ms", "o-"), ("p95_ms", "s--"), ("p99_ms", "^-")):
        values = [r["to_unit_notified"][key] for r in rows]
        if any(v is not None for v in values):
            right.plot(rates, values, style, label=key.replace("_ms", ""))
    right.axhline(100, color="#cc0000", linewidth=0.8, linestyle=":", label="p99 target")
    right.set_xlabel("offered complaints per second")
    right.set_ylabel("acceptance -> unit notified (ms)")
    right.set_title("Latency at fixed offered load")
    if rows:
        right.set_yscale("log")
        right.legend()
    machine = results.get("machine", {})
    fig.suptitle(
        f"Dumas benchmark {results.get('started_at', '')} ({results.get('mode', '')}, "
        f"{machine.get('cores')} cores, load avg at start {machine.get('load_average_at_start')})",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results.json")
    out = Path("var/bench/results.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    print(chart(json.loads(source.read_text()), out))
