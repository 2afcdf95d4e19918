"""The committed gRPC stubs are exactly what `./task proto` generates from proto/."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "libs" / "threadline" / "src"


def test_committed_stubs_match_the_protos(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_proto.py"), str(tmp_path)], check=True, capture_output=True
    )
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*_pb2*.py*"))
    assert len(generated) == 2 * 3  # two protos, each _pb2.py, _pb2.pyi and _pb2_grpc.py
    for rel in generated:
        committed = COMMITTED / rel
        assert committed.exists(), f"{rel} is missing: run ./task proto"
        assert filecmp.cmp(committed, tmp_path / rel, shallow=False), f"{rel} is stale: run ./task proto"
