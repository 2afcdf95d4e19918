"""Guardrails a deployment configures: input checks before a run starts, PII redaction of what it says.

Blocked input ends the run with an ``input_blocked`` error event (the gateway's 422), never a
crash. Redaction covers the streamed tokens, the final answer, the cited passages and the
message texts of state chunks; the token stream holds back its last few dozen characters so
a pattern split across tokens ("4111 1111" + " 1111 1111") is still caught.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from threadline.pii import LONGEST_SPACED_MATCH, redact_pii
from threadline.run_events import Citation, Citations, CustomChunk, MessageChunk, RunPayload, RunResult, StateChunk

from threadline_agent.injection import find_injection
from threadline_agent.worker.failures import RunFailed


class InputBlocked(RunFailed):
    """A question a guardrail refused; ``rule`` names it, for the user's appeal and the admin's log."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__("input_blocked", message)
        self.rule = rule


@dataclass(frozen=True)
class Guardrails:
    max_input_chars: int = 8000
    block_injection: bool = True
    redact_pii: bool = True
    # Terms a deployment refuses, per tenant; "*" applies to every tenant.
    blocked_terms: dict[str, list[str]] = field(default_factory=dict)

    def check_input(self, text: str, tenant_id: str) -> None:
        """Raise the run's ``input_blocked`` failure when ``text`` breaks a rule; the message names the rule."""
        if len(text) > self.max_input_chars:
            raise InputBlocked("length", f"The question is longer than {self.max_input_chars} characters.")
        rule = find_injection(text) if self.block_injection else None
        if rule is not None:
            raise InputBlocked(
                rule.name,
                f"Blocked by the guardrail {rule.name}: the question reads as {rule.says}. Asking about such "
                "phrases is fine: put them in quotes. If this block is wrong, ask an administrator to review it "
                "(they find it in the agent's log by this run's id).",
            )
        lowered = text.lower()
        for term in [*self.blocked_terms.get("*", []), *self.blocked_terms.get(tenant_id, [])]:
            if term.lower() in lowered:
                raise InputBlocked(
                    "blocked_terms",
                    "The question mentions a term this deployment does not accept (AGENT_BLOCKED_TERMS).",
                )

    def redact(self, text: str) -> str:
        return redact_pii(text) if self.redact_pii else text

    def redacted(self, payload: RunPayload) -> RunPayload:
        """``payload`` with PII masked in what a person reads: the answer, cited passages, state and stream parts.

        Tokens are not redacted here, one by one: a pattern may span two of them (see RedactingStream).
        """
        if not self.redact_pii:
            return payload
        if isinstance(payload, RunResult):
            return payload.model_copy(
                update={
                    "answer": redact_pii(payload.answer),
                    "citations": _redacted_citations(payload.citations),
                    "output": _redact_texts(payload.output, redact_pii),
                }
            )
        if isinstance(payload, Citations):
            return Citations(citations=_redacted_citations(payload.citations))
        if isinstance(payload, StateChunk):
            return StateChunk(_redact_texts(payload.root, redact_pii))
        if isinstance(payload, MessageChunk):
            return payload.model_copy(
                update={
                    "chunk": _redact_texts(payload.chunk, redact_pii),
                    "message": _redact_texts(payload.message, redact_pii),
                }
            )
        if isinstance(payload, CustomChunk):
            return CustomChunk(value=_redact_texts(payload.value, redact_pii))
        return payload


def _redacted_citations(citations: list[Citation]) -> list[Citation]:
    return [c.model_copy(update={"text": redact_pii(c.text)}) for c in citations]


def _redact_texts(value: Any, redact: Callable[[str], str]) -> Any:
    """``value`` with every message text (``content`` and ``text`` strings, at any depth) redacted."""
    if isinstance(value, dict):
        return {
            k: redact(v) if k in ("content", "text") and isinstance(v, str) else _redact_texts(v, redact)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact_texts(v, redact) for v in value]
    return value


class RedactingStream:
    """Redacts text that arrives in pieces, releasing it only once no pattern can still be completing."""

    def __init__(self, guardrails: Guardrails) -> None:
        self._redact = guardrails.redact
        self._held = ""

    def feed(self, text: str) -> str:
        self._held = self._redact(self._held + text)
        # Cut at whitespace at least LONGEST_SPACED_MATCH from the end: what is held back may still grow into a match.
        cut = max((m.end() for m in re.finditer(r"\s+", self._held[: -LONGEST_SPACED_MATCH or None])), default=0)
        released, self._held = self._held[:cut], self._held[cut:]
        return released

    def flush(self) -> str:
        released, self._held = self._redact(self._held), ""
        return released
