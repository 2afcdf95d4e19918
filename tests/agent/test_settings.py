"""The agent's settings that need more than a type: model prices and the cost they give a run."""

from __future__ import annotations

import pytest
from threadline.run_events import Usage
from threadline_agent.settings import AgentSettings


def test_a_runs_cost_comes_from_the_configured_price_per_million_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_MODEL_PRICES", '{"gpt-4o-mini": [0.15, 0.6]}')
    settings = AgentSettings()
    usage = Usage(input_tokens=1000, output_tokens=500, total_tokens=1500)
    assert settings.cost_usd("gpt-4o-mini", usage) == pytest.approx(0.00045)
    assert settings.cost_usd("extractive-answerer", usage) == 0.0
    assert settings.cost_usd("unpriced-model", usage) is None
    assert settings.cost_usd(None, usage) is None  # a result that names no model has no price
