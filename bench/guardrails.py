"""How often the prompt-injection guardrail blocks honest questions, and how many attacks it catches.

``python -m bench guardrails`` runs the agent's rules (``threadline_agent.injection``) over two
labelled sets in bench/data: ``guardrail_cases.jsonl``, which the rules were written against, and
``guardrail_cases_heldout.jsonl``, written afterwards and never tuned on, so its rates are the honest
estimate. Benign cases are questions a security-minded team asks (about jailbreaks, system prompts,
"ignore previous instructions" as a topic) and ordinary ones, in six languages; attacks are prompts
from public collections (deepset/prompt-injections, PayloadsAllTheThings, HackAPrompt, DAN and
prompt-leak posts), each with its source. A rule is a pattern, so the timing is of no interest.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from threadline_agent.injection import find_injection

from bench.stats import machine

DATA = Path(__file__).parent / "data"
RESULTS = Path(__file__).parent / "results" / "guardrails.json"
SETS = ("guardrail_cases.jsonl", "guardrail_cases_heldout.jsonl")


def score(name: str) -> dict[str, Any]:
    cases = [json.loads(line) for line in (DATA / name).read_text().splitlines()]
    by_label: dict[str, list[bool]] = defaultdict(list)
    by_language: dict[str, list[bool]] = defaultdict(list)
    wrong = []
    for case in cases:
        rule = find_injection(case["text"])
        blocked = rule is not None
        by_label[case["label"]].append(blocked)
        by_language[f"{case['lang']} {case['label']}"].append(blocked)
        if blocked != (case["label"] == "attack"):
            wrong.append({"text": case["text"], "label": case["label"], "rule": rule.name if rule else None})
    return {
        "benign": len(by_label["benign"]),
        "attacks": len(by_label["attack"]),
        "benign_blocked_pct": round(100 * sum(by_label["benign"]) / len(by_label["benign"]), 1),
        "attacks_caught_pct": round(100 * sum(by_label["attack"]) / len(by_label["attack"]), 1),
        "blocked_by_language": {k: f"{sum(v)}/{len(v)}" for k, v in sorted(by_language.items())},
        "wrong": wrong,
    }


def run(quick: bool = False) -> dict[str, Any]:
    result = {"benchmark": "guardrails", "machine": machine(), "sets": {name: score(name) for name in SETS}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result
