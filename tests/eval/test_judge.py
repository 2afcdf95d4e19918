"""The LLM judge against an OpenAI-compatible server (real HTTP; the one remote SaaS we stand in for)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from evals import judge
from tests.agent.openai_server import ScriptedModel, serve_openai


class Grader(ScriptedModel):
    """Grades an answer faithful when its words are in the passages it was shown; its verdict in a code fence."""

    def reply(self, body: dict[str, Any]) -> tuple[dict[str, Any], str, dict[str, int]]:
        prompt = body["messages"][-1]["content"]
        answer = prompt.split("Answer: ", 1)[1].split("\n", 1)[0]
        verdict = {"faithful": "Sublicensing is not allowed" in answer, "answers_question": True}
        return {"content": f"```json\n{json.dumps(verdict)}\n```"}, "stop", {"prompt_tokens": 1, "completion_tokens": 1}


async def test_the_judge_asks_once_per_answer_and_averages_its_verdicts() -> None:
    rows = [
        {"question": "Is sublicensing allowed?", "answer": "Sublicensing is not allowed [1].", "citations": ["x"]},
        {"question": "Is sublicensing allowed?", "answer": "Yes, always [1].", "citations": ["x"]},
    ]
    async with serve_openai(Grader()) as model:
        graded = await asyncio.to_thread(judge.judge, rows, base_url=model.base_url, api_key="test")
    assert graded["faithful"] == 0.5 and graded["answers_question"] == 1.0
    assert len(model.requests) == 2
    assert "[1] x" in model.requests[0]["messages"][-1]["content"]


def test_an_unreadable_verdict_counts_as_failed() -> None:
    assert judge._verdict("I think it is fine.") == {"faithful": False, "answers_question": False}
