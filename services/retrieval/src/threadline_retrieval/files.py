"""Making a rename or an unlink durable: what a crash must not undo once a caller has been told."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Flush ``folder``'s entries, so a file renamed into it or removed from it stays so after a crash."""
    if not folder.is_dir():
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
