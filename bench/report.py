"""Turns a pytest-benchmark JSON file into the markdown table of bench/README.md.

    python -m pytest bench/bench_speed.py --benchmark-only --benchmark-json=/tmp/b.json
    python bench/report.py /tmp/b.json
"""
from __future__ import annotations

import json
import platform
import sys


def _fmt(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:,.1f} M"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def main(path: str) -> None:
    data = json.load(open(path))
    info = data.get("machine_info", {})
    cpu = info.get("cpu", {}).get("brand_raw", platform.processor())
    print(f"Machine: {cpu}, {info.get('system', '')} {info.get('release', '')}, Python {info.get('python_version', '')}\n")
    print("| benchmark | figures |")
    print("|---|---|")
    for b in data["benchmarks"]:
        extra = ", ".join(f"{k} = {_fmt(v)}" for k, v in b["extra_info"].items() if isinstance(v, (int, float)))
        print(f"| `{b['name']}` | {extra} |")


if __name__ == "__main__":
    main(sys.argv[1])
