"""``python -m evals`` (``./task eval``): score retrieval and answers, write evals/results and docs/eval.png.

python -m evals                          # question set: retrieval + answers; SciFact keyword
python -m evals --scifact full           # SciFact in every mode (embeds 5,183 abstracts: minutes)
python -m evals --cases feedback.jsonl --document kb/  # exported feedback as cases
python -m evals --before /tmp/before     # also the question set's retrieval on another tree
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.stats import machine
from evals import answers, judge, plot, retrieval, scifact
from evals.cases import DOCUMENT, QUESTION_SET, Case, check_passages, read_cases

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
PLOT = ROOT / "docs" / "eval.png"


def _documents(paths: list[Path]) -> list[Path]:
    found = [p for path in paths for p in (sorted(path.rglob("*")) if path.is_dir() else [path]) if p.is_file()]
    if not found:
        raise SystemExit("no documents to evaluate against")
    return found


def _tree_path(tree: Path) -> str:
    """PYTHONPATH that runs another tree's retrieval service and shared library instead of this one's."""
    return f"{tree / 'services' / 'retrieval' / 'src'}:{tree / 'libs' / 'threadline' / 'src'}"


def _brief(figures: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in figures.items() if key != "cases"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=Path, default=QUESTION_SET, help="JSONL cases (default: the GPL-3.0 set)")
    parser.add_argument(
        "--document", type=Path, action="append", help="knowledge base file or folder (default: GPL-3.0)"
    )
    parser.add_argument("--scifact", choices=["off", "keyword", "full"], default="keyword")
    parser.add_argument("--no-answers", action="store_true", help="retrieval only: do not start the mesh")
    parser.add_argument("--url", help="score this running gateway's answers instead of starting a mesh")
    parser.add_argument("--chat-model", action="store_true", help="answers from the configured OPENAI_* model")
    parser.add_argument("--before", type=Path, help="another tree (same layout): its retrieval on the question set")
    parser.add_argument("--out", type=Path, help="results file (a whole default run: evals/results/eval.json)")
    args = parser.parse_args(argv)

    cases: list[Case] = read_cases(args.cases)
    documents = _documents(args.document or [DOCUMENT])
    default_set = args.cases == QUESTION_SET and documents == [DOCUMENT]
    result: dict[str, Any] = {"cases": str(args.cases), "documents": [str(d) for d in documents]}
    if default_set:
        check_passages(cases, DOCUMENT.read_text(encoding="utf-8"))
    if any(case.passage for case in cases):
        if len(documents) != 1:
            raise SystemExit("retrieval is scored over one document; pass a single --document")
        result["question_set"] = retrieval.question_set(cases, documents[0])
        if args.before:
            result["before"] = retrieval.question_set(cases, documents[0], pythonpath=_tree_path(args.before))
            result["before"]["tree"] = str(args.before)
    if not args.no_answers:
        if args.url:
            summary, rows = answers.evaluate(cases, args.url)
        else:
            with answers.mesh_with(documents, chat_model=args.chat_model) as url:
                summary, rows = answers.evaluate(cases, url)
        result["answers"] = {**summary, "cases": rows}
        if judge.configured():
            result["answers"]["judge"] = judge.judge(rows)
    if (earlier := answers.recorded(cases)) is not None:
        result["recorded_answers"] = earlier
    if args.scifact != "off":
        result["scifact"] = scifact.run(args.scifact)
    result["machine"] = machine()

    # Only a whole default run replaces the recorded figures and the plot docs/eval.md shows.
    recorded_run = default_set and not args.no_answers and not args.url and args.scifact != "off"
    if out := args.out or (RESULTS / "eval.json" if recorded_run else None):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    if recorded_run:
        plot.draw(result, PLOT)
    _print(result)
    return 0


def _print(result: dict[str, Any]) -> None:
    if questions := result.get("question_set"):
        for mode, figures in questions["modes"].items():
            print(f"question set, {mode}: {json.dumps(_brief(figures))}")
    if before := result.get("before"):
        for mode, figures in before["modes"].items():
            print(f"before ({before['tree']}), {mode}: {json.dumps(_brief(figures))}")
    if answers_ := result.get("answers"):
        print(f"answers: {json.dumps(_brief(answers_))}")
    if recorded := result.get("recorded_answers"):
        print(f"recorded answers: {json.dumps(recorded)}")
    if scifact_ := result.get("scifact"):
        print(f"SciFact: {json.dumps(scifact_['modes'])}")


if __name__ == "__main__":
    sys.exit(main())
