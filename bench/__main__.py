"""``python -m bench [--quick] [name ...]``: run benchmarks, print their figures, write bench/results/*.json
and the report of all of them, bench/results/report.md."""

from __future__ import annotations

import argparse
import importlib
import json

from bench import report

BENCHMARKS = (
    "query_latency",
    "retrieval_quality",
    "retrieval_latency",
    "retrieval_recall",
    "embeddings",
    "memory_latency",
    "agent_overhead",
    "end_to_end",
    "user_graph",
    "guardrails",
    "hops",
    "answer_cache",
    "load",
)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", choices=[[], *BENCHMARKS], help="default: all")
    parser.add_argument("--quick", action="store_true", help="fewer samples, for a smoke run")
    args = parser.parse_args()
    for name in args.names or BENCHMARKS:
        result = importlib.import_module(f"bench.{name}").run(quick=args.quick)
        print(json.dumps(result, indent=2))
    print(f"report: {report.write()}")


if __name__ == "__main__":
    main()
