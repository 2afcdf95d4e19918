"""A small SSE reader for tests, written from the spec rather than from the gateway's code."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Frame:
    event: str
    data: Any
    id: str | None


def frames(lines: Iterable[str]) -> Iterator[Frame]:
    """Frames from the lines of a stream; comment lines (pings) are skipped, as browsers do."""
    event, data, id_ = "message", [], None
    for line in lines:
        if line == "":
            if data:
                yield Frame(event, json.loads("\n".join(data)), id_)
            event, data, id_ = "message", [], None
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                id_ = value


def parse(text: str) -> list[Frame]:
    return list(frames(text.split("\n")))
