"""One run's events on its subject: numbered, tokens coalesced, PII redacted, the final one stored before the ack."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError
from opentelemetry import trace
from threadline.events import Topology
from threadline.run_events import RunError, RunEvent, RunEventKind, RunPayload, RunResult, RunStarted, Token
from threadline.telemetry import inject_headers

from threadline_agent.worker.execution import Progress, StreamPart
from threadline_agent.worker.guardrails import Guardrails, RedactingStream

tracer = trace.get_tracer("threadline.agent")


class RunEventPublisher:
    """Publishes one run's events in order, numbering them from 0, or on from where an earlier delivery stopped.

    Tokens that come faster than ``coalesce_s`` apart travel as one token event: a model can
    stream hundreds of chunks a second, and a NATS message (and a gateway wake-up) per chunk
    cost more CPU than the rest of the run. A client sees the same text, in fewer pieces.
    With ``guardrails`` redacting PII, tokens, the answer, cited passages and state chunks are redacted.
    """

    def __init__(
        self,
        nc: NatsClient,
        topology: Topology,
        run_id: str,
        *,
        coalesce_s: float = 0.0,
        guardrails: Guardrails | None = None,
    ) -> None:
        self._nc, self._js = nc, nc.jetstream()
        self._stream = topology.run_events_stream
        self._subject = topology.run_events(run_id)
        self._run_id = run_id
        self._seq = 0
        self._coalesce_s = coalesce_s
        self._tokens: list[str] = []
        self._token_source: tuple[str | None, str | None] = (None, None)  # the message and node they belong to
        self._flush_later: asyncio.Task[None] | None = None
        self._guardrails = guardrails if guardrails is not None and guardrails.redact_pii else None
        self._redacting = RedactingStream(self._guardrails) if self._guardrails is not None else None

    async def last_stored(self) -> RunEvent | None:
        """The last event of this run the RUN_EVENTS stream holds: an earlier delivery's, on a redelivery."""
        try:
            stored = await self._js.get_last_msg(self._stream, self._subject)
        except NotFoundError:
            return None
        assert stored.data is not None  # an event always has a body
        last = RunEvent.model_validate_json(stored.data)
        self._seq = last.seq + 1
        return last

    async def emit(self, payload: RunStarted | Progress) -> None:
        """A plain publish: the RUN_EVENTS stream captures it, and a lost token is not worth a round trip."""
        if isinstance(payload, Token):
            await self._take_token(payload)
            return
        await self._flush_tokens()
        await self._publish(payload)

    async def emit_state(self, mode: RunEventKind, chunk: StreamPart) -> None:
        """A part of one of LangGraph's stream modes (values, updates, messages, events, debug, custom),
        for a run that asked for it."""
        await self._flush_tokens()
        await self._publish(chunk, mode)

    async def finish(self, payload: RunResult | RunError) -> None:
        """The final event waits for the stream's ack: the run is acked only once its outcome is stored."""
        await self._flush_tokens()
        event = self._next(payload)
        # Its own span: the round trip to JetStream is a hop of every run's budget (bench/hops.py).
        with tracer.start_as_current_span("publish run end", kind=trace.SpanKind.PRODUCER):
            await self._js.publish(self._subject, event.to_bytes(), stream=self._stream, headers=inject_headers())

    async def _publish(self, payload: RunPayload, kind: RunEventKind | None = None) -> None:
        await self._nc.publish(self._subject, self._next(payload, kind).to_bytes(), headers=inject_headers())

    def _next(self, payload: RunPayload, kind: RunEventKind | None = None) -> RunEvent:
        if self._guardrails is not None:
            payload = self._guardrails.redacted(payload)
        event = RunEvent.of(self._run_id, self._seq, payload, kind)
        self._seq += 1
        return event

    async def _take_token(self, token: Token) -> None:
        source = (token.message_id, token.node)
        if source != self._token_source:
            await self._flush_tokens()
            self._token_source = source
        text = self._redacting.feed(token.text) if self._redacting is not None else token.text
        if text:
            self._tokens.append(text)
        if self._coalesce_s <= 0:
            await self._flush_tokens(release_held=False)
        elif self._flush_later is None and self._tokens:
            self._flush_later = asyncio.create_task(self._flush_after(self._coalesce_s))

    async def _flush_after(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        self._flush_later = None  # from here on this task is the flush, not a timer to cancel
        await self._flush_tokens(release_held=False)

    async def _flush_tokens(self, release_held: bool = True) -> None:
        """Publish the buffered tokens; ``release_held`` also lets out what redaction still holds back."""
        if self._flush_later is not None:
            self._flush_later.cancel()
            self._flush_later = None
        if release_held and self._redacting is not None and (tail := self._redacting.flush()):
            self._tokens.append(tail)
        if self._tokens:
            message_id, node = self._token_source
            token = Token(text="".join(self._tokens), message_id=message_id, node=node)
            self._tokens.clear()
            await self._publish(token)
