"""Which model answers: ChatOpenAI when an endpoint is configured, the extractive answerer otherwise."""

from __future__ import annotations

from langchain_openai import ChatOpenAI
from threadline_agent.graphs.answerer import ExtractiveAnswerer
from threadline_agent.graphs.chat_models import chat_model, model_name
from threadline_agent.settings import AgentSettings


def test_offline_by_default() -> None:
    model = chat_model(AgentSettings(OPENAI_API_KEY=None, OPENAI_BASE_URL=None))
    assert isinstance(model, ExtractiveAnswerer)
    assert model_name(model) == "extractive-answerer"


def test_an_openai_compatible_endpoint_switches_to_chat_openai() -> None:
    settings = AgentSettings(OPENAI_API_KEY=None, OPENAI_BASE_URL="http://127.0.0.1:9/v1", OPENAI_MODEL="local")
    model = chat_model(settings)
    assert isinstance(model, ChatOpenAI)
    assert model.streaming and model.stream_usage
    assert model_name(model) == "local"
