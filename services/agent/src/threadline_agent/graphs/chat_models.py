"""Which chat model answers: an OpenAI-compatible endpoint when one is configured, else the extractive answerer."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI

from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.settings import AgentSettings


def chat_model(settings: AgentSettings) -> BaseChatModel:
    """``ChatOpenAI`` (streaming, with token usage) if a key or a base URL is set; the offline answerer otherwise."""
    if settings.openai_api_key or settings.openai_base_url:
        return ChatOpenAI(
            model=settings.openai_model,
            api_key=settings.openai_api_key or "unused",  # local OpenAI-compatible servers accept any key
            base_url=settings.openai_base_url,
            streaming=True,
            stream_usage=True,
            # The OpenAI client's own retries (backoff, Retry-After on 429); nothing else retries model calls.
            max_retries=settings.model_max_retries,
            timeout=settings.model_timeout_s,
        )
    return ExtractiveAnswerer()


def model_name(model: BaseChatModel) -> str:
    """The name the end event reports, so a client always knows what produced the answer."""
    return str(getattr(model, "model_name", None) or model._llm_type)
