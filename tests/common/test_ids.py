"""The one alphabet of each id and name, as the helpers check it and as pydantic (and so the API) checks it."""

from __future__ import annotations

import re
from typing import Annotated

import grpc
import pytest
from pydantic import Field, TypeAdapter, ValidationError
from threadline import events, ids
from threadline.grpc import BadRequest

TENANTS = ["acme", "a", "A1", "acme_corp-2", "x" * 64]
NOT_TENANTS = ["", "-x", "_x", "a.b", "a:b", "a/b", "a b", "x" * 65, "acme\n", "café"]
NAMES = ["default", "_drafts", "-x", "text-embedding-3-small", "x" * 64]
NOT_NAMES = ["", ".next", "a.b", "a/b", "../etc", "x" * 65, "docs\n"]
RUN_IDS = ["r1", "0f1e2d3c-4b5a", "_x", "x" * 128]
NOT_RUN_IDS = ["", "a.b", "a*", "a>", "a b", "x" * 129, "r1\n"]


def _pydantic_accepts(pattern: str, value: str) -> bool:
    """What a model field (and the OpenAPI document made from it) accepts with this pattern."""
    try:
        TypeAdapter(Annotated[str, Field(pattern=pattern)]).validate_python(value)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(
    ("pattern", "check", "good", "bad"),
    [
        (ids.TENANT_PATTERN, ids.is_tenant_id, TENANTS, NOT_TENANTS),
        (ids.NAME_PATTERN, ids.is_name, NAMES, NOT_NAMES),
        (ids.RUN_ID_PATTERN, ids.is_run_id, RUN_IDS, NOT_RUN_IDS),
        (ids.INGEST_ID_PATTERN, ids.is_ingest_id, ["i-1", "_x", "x" * 64], ["", "a.b", "x" * 65, "i-1\n"]),
    ],
)
def test_the_checks_and_pydantic_agree_on_each_alphabet(pattern, check, good, bad) -> None:
    for value in good:
        assert check(value) and _pydantic_accepts(pattern, value), value
    for value in bad:
        assert not check(value) and not _pydantic_accepts(pattern, value), value


def test_a_tenant_starts_with_a_letter_or_digit_where_a_collection_need_not() -> None:
    assert not ids.is_tenant_id("-x") and not ids.is_tenant_id("_x")
    assert ids.is_name("-x") and ids.is_name("_x")


@pytest.mark.parametrize("value", ["", *NAMES, *NOT_NAMES])
def test_a_collection_as_requested_is_a_name_or_empty(value: str) -> None:
    assert (re.fullmatch(ids.COLLECTION_PATTERN, value) is not None) == (value == "" or ids.is_name(value))


def test_thread_ids_take_the_separators_langgraph_clients_use() -> None:
    for value in ["thread-1", "a.b:c_d", "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b", "x" * 128]:
        assert _pydantic_accepts(ids.ID_PATTERN, value), value
    for value in ["", ".hidden", "-x", "a/b", "a b", "x" * 129]:
        assert not _pydantic_accepts(ids.ID_PATTERN, value), value


def test_a_refused_tenant_is_a_bad_request_quoting_a_bounded_part_of_it() -> None:
    assert ids.check_tenant_id("acme") == "acme"
    with pytest.raises(BadRequest, match=r"tenant_id must be 1-64 letters.*the first a letter or digit \(got '-x'\)"):
        ids.check_tenant_id("-x")
    with pytest.raises(BadRequest) as long:
        ids.check_tenant_id("x" * 10_000)
    assert len(str(long.value)) < 200 and long.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(BadRequest, match="collection must be"):
        ids.check_name("a/b", "collection")


def test_ingest_ids_keep_their_one_definition() -> None:
    assert events.INGEST_ID_PATTERN is ids.INGEST_ID_PATTERN
