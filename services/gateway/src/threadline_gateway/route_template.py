"""The route template a request matched, for labels that must not hold raw paths (metrics, audit)."""

from __future__ import annotations

from starlette.types import Scope


def route_template(scope: Scope) -> str:
    """The matched route's path template with the prefixes of the routers that include it.

    FastAPI records the route as declared: a route of a router included under ``/langgraph``
    says ``/threads/{thread_id}``. The prefix is the part of the request's path before the
    suffix the route matches. Paths no route matched share one label.
    """
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not template:
        return "unmatched"
    regex = getattr(route, "path_regex", None)
    path: str = scope["path"]
    if regex is not None:
        for start, char in enumerate(path):
            if char == "/" and regex.match(path[start:]):
                return path[:start] + template
    return str(template)
