"""The ids and names that cross service boundaries, each with the one alphabet every service accepts.

The patterns are anchored, to go as they are into pydantic's ``Field(pattern=...)`` and the OpenAPI
document. The checks below match the whole value: with ``re.match``, ``$`` also matches before a
trailing newline, which would let ``"acme\\n"`` through.
"""

from __future__ import annotations

import re

from threadline.grpc import BadRequest

# Thread, assistant and checkpoint ids: LangGraph clients send UUIDs and names with '.' or ':' in them.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
# Tenants name folders of collection files (retrieval) and are joined into keys with ':' and '.'
# (memory, Redis): no separators, and a letter or digit first, so no folder reads as a command-line option.
TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
# Collections (and the embedding models that name vectors) become file names in the retrieval service:
# no '.', '/' or '\', so a name cannot leave its tenant's folder or clash with the files kept beside a collection.
NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# A collection as a request names it: a name as above, or empty for the tenant's default collection.
COLLECTION_PATTERN = r"^([A-Za-z0-9_-]{1,64})?$"
# A run id is a token of NATS subjects (no '.', '*', '>' or space) and a key of JetStream key-value buckets.
RUN_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
# An ingest id is a subject token too (its events' subject is named after it).
INGEST_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# A graph's name (a key of langgraph.json's "graphs") is a subject token and part of a consumer's name:
# no '.', '*', '>' or space, and a letter or digit first.
GRAPH_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"

_TENANT = re.compile(TENANT_PATTERN)
_NAME = re.compile(NAME_PATTERN)
_RUN_ID = re.compile(RUN_ID_PATTERN)
_INGEST_ID = re.compile(INGEST_ID_PATTERN)
_GRAPH_ID = re.compile(GRAPH_ID_PATTERN)
# A refused value is quoted back, but never whole: a status message travels in a size-limited header.
_SHOWN_CHARS = 70


def is_tenant_id(value: str) -> bool:
    return _TENANT.fullmatch(value) is not None


def is_name(value: str) -> bool:
    """A collection's (or an embedding model's) name."""
    return _NAME.fullmatch(value) is not None


def is_run_id(value: str) -> bool:
    return _RUN_ID.fullmatch(value) is not None


def is_ingest_id(value: str) -> bool:
    return _INGEST_ID.fullmatch(value) is not None


def is_graph_id(value: str) -> bool:
    """A graph's name: a token of NATS subjects and of its workers' durable consumer's name."""
    return _GRAPH_ID.fullmatch(value) is not None


def check_tenant_id(value: str, field: str = "tenant_id") -> str:
    """``value``, or :class:`~threadline.grpc.BadRequest` saying what a tenant id is."""
    if not is_tenant_id(value):
        raise BadRequest(
            f"{field} must be 1-64 letters, digits, '_' or '-', the first a letter or digit (got {_shown(value)})"
        )
    return value


def check_name(value: str, field: str) -> str:
    """``value``, or :class:`~threadline.grpc.BadRequest` saying what a name is."""
    if not is_name(value):
        raise BadRequest(f"{field} must be 1-64 letters, digits, '_' or '-' (got {_shown(value)})")
    return value


def _shown(value: str) -> str:
    return repr(value) if len(value) <= _SHOWN_CHARS else f"{value[:_SHOWN_CHARS]!r}..."
