"""Generate the Python gRPC stubs (with .pyi types) from proto/ into the shared library.

The stubs are committed, so installing Threadline needs no protoc; `task proto`
regenerates them and the test suite fails if they drift from the .proto files.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "libs" / "threadline" / "src"


def generate(out_dir: Path = OUT_DIR) -> list[Path]:
    protos = sorted(PROTO_DIR.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *map(str, protos),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for proto in protos:
        package_dir = out_dir / proto.parent.relative_to(PROTO_DIR)
        for parent in [package_dir, *package_dir.parents]:
            if parent == out_dir / "threadline" or parent == out_dir:
                break
            (parent / "__init__.py").touch()
    return protos


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT_DIR
    for proto in generate(out):
        print(f"generated stubs for {proto.relative_to(ROOT)}")
