"""The store namespace of a user's own items, the same in every service that files or erases them.

The stores join a namespace's labels with ".", so a label may not hold one, yet a user id often
does: an email as a JWT subject is the common case. The id is escaped into a label here, once, so
that the agent's memory tools and the memory service's erasure always agree on where a user's
items are; "%" is escaped too, so two different ids never share a label.
"""

from __future__ import annotations

USERS = "users"


def user_label(user_id: str) -> str:
    """``user_id`` as one namespace label: "%" becomes "%25" and "." becomes "%2E"."""
    return user_id.replace("%", "%25").replace(".", "%2E")


def user_namespace(user_id: str, *rest: str) -> tuple[str, ...]:
    """``("users", <escaped user_id>, *rest)``: where items filed under a user live."""
    return (USERS, user_label(user_id), *rest)
