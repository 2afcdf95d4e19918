"""Where in a tenant's knowledge base a run searches: one collection, and a metadata filter.

A run carries its aim in ``config["configurable"]`` under ``collection`` and ``filter``, so an
assistant's config aims its runs the same way a request does (the request's keys win); the
gateway checks it before the run starts, the agent's knowledge-base tool searches with it, and
the answer cache keys on it. The filter is the retrieval service's ``SearchRequest.filter`` as
JSON: an object of metadata keys to the exact string every matching chunk has (``document_id``
matches the document's id), the same form a document's metadata takes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, StringConstraints, field_validator

from threadline.ids import COLLECTION_PATTERN

COLLECTION_KEY = "collection"
FILTER_KEY = "filter"
# The collection a tenant's uploads go to when they name none; it "exists" before anything is in it,
# so aiming at it is never a 404 (an empty knowledge base finds nothing).
DEFAULT_COLLECTION = "default"
MAX_FILTER_KEYS = 16
MAX_FILTER_CHARS = 256

CollectionName = Annotated[
    str,
    Field(
        pattern=COLLECTION_PATTERN,
        description="The knowledge-base collection to search (empty or `default`: the tenant's default one).",
    ),
]
SearchFilter = Annotated[
    dict[
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_FILTER_CHARS)],
        Annotated[StrictStr, StringConstraints(max_length=MAX_FILTER_CHARS)],
    ],
    Field(
        max_length=MAX_FILTER_KEYS,
        description="Search only chunks whose metadata has each of these keys with exactly this string value "
        '(`document_id` matches the document), e.g. `{"filename": "billing.md"}`.',
    ),
]


class SearchAim(BaseModel):
    """A run's aim; the empty aim searches the tenant's default collection, unfiltered."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    collection: CollectionName = ""
    filter: SearchFilter = Field(default_factory=dict)

    @field_validator("collection")
    @classmethod
    def _default_is_empty(cls, value: str) -> str:
        # One spelling of the default: the retrieval service reads "" as it, and the cache keys agree.
        return "" if value == DEFAULT_COLLECTION else value

    @classmethod
    def of(cls, configurable: Mapping[str, Any]) -> SearchAim:
        """The aim a run's ``configurable`` states; a malformed one is a pydantic ``ValidationError``."""
        return cls.model_validate(
            {key: configurable[key] for key in (COLLECTION_KEY, FILTER_KEY) if configurable.get(key) is not None}
        )

    def key(self) -> str:
        """The aim as a stable string (empty when unaimed): what an answer found with it is keyed on."""
        if not self.collection and not self.filter:
            return ""
        return json.dumps([self.collection, self.filter], sort_keys=True, separators=(",", ":"))
