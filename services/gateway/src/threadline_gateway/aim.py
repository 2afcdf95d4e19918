"""A run's knowledge-base aim (:mod:`threadline.aim`), gathered from wherever the request says it and checked.

Every API states it its own way: body fields (``collection``, ``filter``) on the v1 API, the
WebSocket and the OpenAI API's extra body; ``config.configurable`` or ``context`` on the
LangGraph API; an assistant's config for all its runs. All of them end up in the run's
``configurable``, where the agent's tool reads them, by this precedence: body fields, then
``configurable``, then ``context``; the request's, then its assistant's. A malformed aim is a
422 naming where it was said; a collection the caller's tenant does not have (another tenant's
included) a 404 ``collection_not_found``, before any run starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
import structlog
from pydantic import ValidationError
from threadline.aim import COLLECTION_KEY, FILTER_KEY, SearchAim
from threadline.retrieval.v1 import retrieval_pb2 as pb
from threadline.retrieval.v1.retrieval_pb2_grpc import RetrievalServiceStub

from threadline_gateway.errors import ApiError

log = structlog.get_logger("threadline.gateway")
_AIM_KEYS = (COLLECTION_KEY, FILTER_KEY)
_LOOKUP_TIMEOUT_S = 5.0


def aimed(
    configurable: Mapping[str, Any], context: Mapping[str, Any] | None, stated: Mapping[str, Any], where: str
) -> dict[str, Any]:
    """``configurable`` with the aim ``stated`` (body fields) over its own, over ``context``'s; checked.

    ``where`` prefixes the field a 422 names for a value from ``configurable`` or ``context``
    (empty for the request's own, ``assistant.`` for its assistant's).
    """
    result, said_in = dict(configurable), {}
    for key in _AIM_KEYS:
        if stated.get(key) is not None:
            result[key], said_in[key] = stated[key], key
        elif result.get(key) is not None:
            said_in[key] = f"{where}config.configurable.{key}"
        elif context and context.get(key) is not None:
            result[key], said_in[key] = context[key], f"{where}context.{key}"
    try:
        SearchAim.of(result)
    except ValidationError as exc:
        fields = [
            {"field": ".".join([said_in[str(e["loc"][0])], *map(str, e["loc"][1:])]), "message": e["msg"]}
            for e in exc.errors()
        ]
        raise ApiError(422, "validation_error", "The request is not valid.", fields=fields) from exc
    return result


async def check_collection(
    retrieval: RetrievalServiceStub | None, tenant_id: str, configurable: Mapping[str, Any]
) -> None:
    """A 404 ``collection_not_found`` unless the run's collection is the default or one of ``tenant_id``'s.

    With the retrieval service unreachable the run still starts: its search then fails as a
    tool error the model reads, as any outage of the knowledge base does.
    """
    name = SearchAim.of(configurable).collection
    if not name or retrieval is None:
        return
    try:
        reply = await retrieval.ListCollections(
            pb.ListCollectionsRequest(tenant_id=tenant_id), timeout=_LOOKUP_TIMEOUT_S
        )
    except grpc.aio.AioRpcError as exc:
        log.warning("could not check a run's collection; starting it anyway", collection=name, code=exc.code().name)
        return
    if not any(collection.name == name for collection in reply.collections):
        raise ApiError(404, "collection_not_found", f"No collection {name!r} in this tenant's knowledge base.")
