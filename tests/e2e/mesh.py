"""Run the mesh the way ``./task up`` does, as separate OS processes, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BANNER = "Threadline is up"


class MeshProcess:
    """A launcher process whose stdout is read for the banner and whose children are tracked."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.log_lines: list[str] = []  # the services' stderr: their JSON logs
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, so SIGINT to the group is a terminal's Ctrl-C
        )
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_logs, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if BANNER in line:
                self._ready.set()
        self._ready.set()

    def _read_logs(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log_lines.append(line.rstrip("\n"))

    def wait_ready(self, timeout: float) -> None:
        if not self._ready.wait(timeout) or self.proc.poll() is not None:
            self.interrupt()
            raise RuntimeError("the mesh did not come up:\n" + "\n".join((self.lines + self.log_lines)[-40:]))

    def descendants(self) -> set[int]:
        """Every live process started under the launcher (children run in their own sessions)."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        found, frontier = set(), {self.proc.pid}
        while frontier:
            frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
            found |= frontier
        return found

    def interrupt(self, timeout: float = 60.0) -> int:
        """Ctrl-C: SIGINT to the launcher's process group, then wait for it to exit."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids: set[int], timeout: float = 20.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while (left := {p for p in pids if alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def launcher_args() -> list[str]:
    return [sys.executable, str(ROOT / "tools" / "up.py")]
