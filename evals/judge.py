"""An LLM judge, used only when a chat model is configured (OPENAI_API_KEY, optional OPENAI_BASE_URL).

Why not ragas: it brings datasets, pandas and its own LLM wrappers for two numbers we can ask
for in one prompt, and its metrics call the model several times per case. One small prompt
through langchain-openai (already a dependency of the agent) says, per answer, whether every
claim is supported by the cited passages and whether it answers the question.
"""

from __future__ import annotations

import json
import os
from typing import Any

from evals.metrics import mean

PROMPT = """You grade an answer produced by a retrieval system.

Question: {question}

Cited passages:
{passages}

Answer: {answer}

Reply with JSON only: {{"faithful": true|false, "answers_question": true|false}}.
"faithful" is true when every claim in the answer is supported by the cited passages.
"answers_question" is true when the answer gives what the question asks for."""


def configured() -> bool:
    return bool(os.environ.get("OPENAI_API_KEY"))


def _verdict(text: str) -> dict[str, bool]:
    """The model's JSON, tolerating a code fence around it; anything else counts as a failed grade."""
    body = text.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    try:
        parsed = json.loads(body)
    except ValueError:
        return {"faithful": False, "answers_question": False}
    return {key: bool(parsed.get(key)) for key in ("faithful", "answers_question")}


def judge(rows: list[dict[str, Any]], base_url: str | None = None, api_key: str | None = None) -> dict[str, Any]:
    """Grade each answered row with the configured model (OPENAI_MODEL, default gpt-4o-mini)."""
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(
        model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
        temperature=0,
        base_url=base_url or os.environ.get("OPENAI_BASE_URL"),
        api_key=api_key or os.environ["OPENAI_API_KEY"],
    )
    verdicts = []
    for row in rows:
        passages = "\n".join(f"[{n}] {text}" for n, text in enumerate(row["citations"], 1)) or "(none)"
        prompt = PROMPT.format(question=row["question"], passages=passages, answer=row["answer"])
        verdicts.append(_verdict(str(model.invoke(prompt).content)))
    return {
        "model": model.model_name,
        "faithful": mean([float(v["faithful"]) for v in verdicts]),
        "answers_question": mean([float(v["answers_question"]) for v in verdicts]),
    }
