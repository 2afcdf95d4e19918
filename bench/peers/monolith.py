"""The app a user would otherwise write: one FastAPI process with in-process FAISS and a Postgres checkpointer.

``BENCH_KB_DIR`` names a directory written by ``knowledge_base.save``; ``DATABASE_URL`` the
PostgreSQL database for checkpoints. Same graph and answerer as the agent service.
``POST /query`` answers; ``POST /stream`` streams the answer's tokens as SSE.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from langchain_core.messages import AIMessageChunk, HumanMessage
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from pydantic import BaseModel
from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.graphs.assistants import build_graph

from bench.peers.knowledge_base import load


class Question(BaseModel):
    input: str
    thread_id: str | None = None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    kb = load(Path(os.environ["BENCH_KB_DIR"]))
    async with AsyncPostgresSaver.from_conn_string(os.environ["DATABASE_URL"]) as saver:
        await saver.setup()
        app.state.graph = build_graph(ExtractiveAnswerer(), [kb.tool()], saver)
        yield


app = FastAPI(lifespan=lifespan)


def _config(question: Question) -> dict[str, Any]:
    return {"configurable": {"thread_id": question.thread_id or str(uuid.uuid4())}}


@app.post("/query")
async def query(question: Question, request: Request) -> dict[str, Any]:
    config = _config(question)
    state = await request.app.state.graph.ainvoke({"messages": [HumanMessage(question.input)]}, config)
    citations = [p for m in state["messages"] if isinstance(getattr(m, "artifact", None), list) for p in m.artifact]
    return {"answer": state["messages"][-1].content, "citations": citations, **config["configurable"]}


@app.post("/stream")
async def stream(question: Question, request: Request) -> StreamingResponse:
    graph = request.app.state.graph

    async def frames() -> AsyncIterator[str]:
        inputs = {"messages": [HumanMessage(question.input)]}
        async for chunk, _ in graph.astream(inputs, _config(question), stream_mode="messages"):
            if isinstance(chunk, AIMessageChunk) and chunk.content:
                yield f"event: token\ndata: {json.dumps({'text': chunk.content})}\n\n"
        yield "event: end\ndata: {}\n\n"

    return StreamingResponse(frames(), media_type="text/event-stream")
