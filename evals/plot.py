"""docs/eval.png: recall@k of the needed passage per search mode, and the answers' scores.

Drawn like bench/end_to_end.py draws docs/bench-latency.png: matplotlib on the Agg backend
(no display), one figure, two panels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evals.retrieval import KS


def draw(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    questions = result["question_set"]
    for mode, figures in questions["modes"].items():
        left.plot(KS, [figures[f"recall@{k}"] for k in KS], marker="o", label=mode)
    if before := result.get("before"):
        hybrid = before["modes"]["hybrid"]
        left.plot(KS, [hybrid[f"recall@{k}"] for k in KS], marker="x", linestyle="--", label="hybrid, before")
    left.set(xlabel="k (chunks retrieved)", ylabel="recall@k of the needed passage", xticks=list(KS), ylim=(0, 1.02))
    left.set_title(f"{questions['questions']} questions over GPL-3.0", fontsize=10)
    bars: dict[str, float] = {}
    if answers := result.get("answers"):
        bars |= {
            "faithfulness": answers["faithfulness"],
            "cites the\npassage": answers["cites_passage"],
            "passage among\nits citations": answers["passage_among_citations"],
        }
    for mode, figures in (result.get("scifact") or {}).get("modes", {}).items():
        bars[f"SciFact {mode}\nnDCG@10"] = figures["ndcg@10"]
    heights = [value or 0.0 for value in bars.values()]
    drawn = right.bar(range(len(bars)), heights, color="tab:blue")
    right.bar_label(drawn, labels=[f"{h:.2f}" for h in heights], fontsize=8)
    right.set_xticks(range(len(bars)), list(bars), fontsize=8)
    right.set(ylim=(0, 1.1), ylabel="share (nDCG for SciFact)")
    right.set_title("Answers from the mesh (offline answerer), SciFact", fontsize=10)
    for axis in (left, right):
        axis.grid(alpha=0.3)
    left.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
