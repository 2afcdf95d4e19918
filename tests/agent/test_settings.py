"""The agent's settings that need more than a type: model prices and the cost they give a run."""

from __future__ import annotations

import pytest
from threadline_agent.settings import AgentSettings


def test_a_runs_cost_comes_from_the_configured_price_per_million_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_MODEL_PRICES", '{"gpt-4o-mini": [0.15, 0.6]}')
    settings = AgentSettings()
    assert settings.cost_usd("gpt-4o-mini", {"input_tokens": 1000, "output_tokens": 500}) == pytest.approx(0.00045)
    assert settings.cost_usd("extractive-answerer", {"input_tokens": 1000, "output_tokens": 500}) == 0.0
    assert settings.cost_usd("unpriced-model", {"input_tokens": 1000}) is None
