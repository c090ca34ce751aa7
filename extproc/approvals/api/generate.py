"""Compile ``protos/approvals.proto`` into this package.

Run ``python -m extproc.approvals.api.generate`` from a checkout after changing the proto.

The proto is mapped to the virtual path ``extproc/approvals/api/approvals.proto``, so the
generated stub imports its messages as ``extproc.approvals.api.approvals_pb2`` (protoc's
Python output has no relative imports). The generated files are committed; a test regenerates
them into a temporary directory and compares, so they never drift from the proto. Needs the
``grpcio-tools`` development dependency, whose version matches ``grpcio``'s.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PROTO = REPO / "protos" / "approvals.proto"
PACKAGE_DIR = "extproc/approvals/api"
GENERATED = ("approvals_pb2.py", "approvals_pb2.pyi", "approvals_pb2_grpc.py")


def generate(out_root: Path, proto: Path = PROTO) -> list[Path]:
    """Write the generated files under ``out_root/extproc/approvals/api``; return their paths."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    out_root.mkdir(parents=True, exist_ok=True)
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PACKAGE_DIR}={proto.parent}",
            f"-I{well_known}",
            f"--python_out={out_root}",
            f"--pyi_out={out_root}",
            f"--grpc_python_out={out_root}",
            str(proto),
        ]
    )
    if status != 0:
        raise RuntimeError(f"protoc failed on {proto} (exit {status})")
    return [out_root / PACKAGE_DIR / name for name in GENERATED]


def main() -> int:
    for path in generate(REPO):
        print(path.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
