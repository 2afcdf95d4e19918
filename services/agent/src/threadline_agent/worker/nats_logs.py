"""FastStream's own lines on the worker's NATS logger, at the level they deserve: an idle fetch is no error.

FastStream's pull loop treats ``nats.errors.TimeoutError`` as "no runs yet", but nats-py's
``PullSubscription.fetch`` sometimes ends an idle fetch with a bare ``asyncio.TimeoutError``
instead (when its first, no-wait request already took the whole timeout, as it does on a
busy event loop). The loop's task then fails, and FastStream's task supervisor logs the
traceback at ERROR ("Task-10 raised an exception, retrying...") and starts the loop again.
Nothing is lost, so :class:`IdleFetchTimeouts` turns exactly that record into one DEBUG line,
and the supervisor's INFO note on every restart into DEBUG too. Any other exception it
reports, a fetch's included, keeps its ERROR.
"""

from __future__ import annotations

import logging
import re

NATS_LOGGER = "threadline.agent.nats"
_RESTARTING = re.compile(r"^\S+ raised an exception, retrying\.\.\.")
_TASK_ENDED = re.compile(r"^callback for \S+ is being executed\.\.\.$")


def quiet_idle_fetches(logger: logging.Logger) -> None:
    """Install the filter on ``logger`` (the one FastStream was given), once however many workers share it."""
    if not any(isinstance(f, IdleFetchTimeouts) for f in logger.filters):
        logger.addFilter(IdleFetchTimeouts(logger))


class IdleFetchTimeouts(logging.Filter):
    """Rewrites FastStream's report of an idle pull fetch that timed out, and its restart notes, to DEBUG."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self._logger = logger

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _RESTARTING.match(message) and _idle_fetch_timed_out(record):
            _demote(record, "idle fetch for runs timed out; fetching again")
        elif _TASK_ENDED.match(message):
            _demote(record, message)
        else:
            return True
        # The logger's level was checked for the original level: check it again for DEBUG.
        return self._logger.isEnabledFor(logging.DEBUG)


def _idle_fetch_timed_out(record: logging.LogRecord) -> bool:
    """Whether the record's exception is a timeout raised inside nats-py's pull ``fetch``."""
    exc = record.exc_info[1] if record.exc_info else None
    if not isinstance(exc, TimeoutError):  # asyncio's and nats-py's timeouts are both TimeoutError
        return False
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "fetch" and frame.f_globals.get("__name__") == "nats.js.client":
            return True
        tb = tb.tb_next
    return False


def _demote(record: logging.LogRecord, message: str) -> None:
    record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
    record.msg, record.args = message, ()
    record.exc_info = record.exc_text = None
