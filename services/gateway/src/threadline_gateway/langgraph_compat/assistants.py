"""``/langgraph/assistants``: the assistants the agents serve, one per configured graph."""

from __future__ import annotations

from fastapi import APIRouter

from threadline_gateway.deps import Settings
from threadline_gateway.errors import ApiError
from threadline_gateway.langgraph_compat.schemas import Assistant, AssistantSearch
from threadline_gateway.schemas import error_responses
from threadline_gateway.settings import GatewaySettings

router = APIRouter(prefix="/assistants")

# Assistants come from configuration and have no creation time; a fixed one keeps answers stable across replicas.
_CREATED = "2025-01-01T00:00:00+00:00"


def _assistant(assistant_id: str) -> Assistant:
    return Assistant(
        assistant_id=assistant_id, graph_id=assistant_id, name=assistant_id, created_at=_CREATED, updated_at=_CREATED
    )


def _matching(settings: GatewaySettings, body: AssistantSearch) -> list[Assistant]:
    found = [_assistant(a) for a in settings.assistant_ids()]
    if body.graph_id:
        found = [a for a in found if a.graph_id == body.graph_id]
    if body.name:
        found = [a for a in found if body.name.lower() in a.name.lower()]
    if body.metadata:
        found = [a for a in found if all(a.metadata.get(k) == v for k, v in body.metadata.items())]
    return found


@router.post("/search", response_model=list[Assistant])
async def search_assistants(body: AssistantSearch, settings: Settings) -> list[Assistant]:
    return _matching(settings, body)[body.offset : body.offset + body.limit]


@router.post("/count", response_model=int)
async def count_assistants(body: AssistantSearch, settings: Settings) -> int:
    return len(_matching(settings, body))


@router.get("/{assistant_id}", response_model=Assistant, responses=error_responses(404))
async def get_assistant(assistant_id: str, settings: Settings) -> Assistant:
    if assistant_id not in settings.assistant_ids():
        raise ApiError(404, "not_found", f"No assistant {assistant_id!r}.")
    return _assistant(assistant_id)
