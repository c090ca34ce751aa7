"""The committed gRPC code of the approvals API is exactly what protoc makes of the proto."""

from __future__ import annotations

from pathlib import Path

from extproc.approvals.api.generate import GENERATED, PACKAGE_DIR, REPO, generate


def test_the_generated_code_is_in_step_with_the_proto(tmp_path: Path) -> None:
    fresh = generate(tmp_path)
    assert [path.name for path in fresh] == list(GENERATED)
    for path in fresh:
        committed = REPO / PACKAGE_DIR / path.name
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed.relative_to(REPO)} differs from protos/approvals.proto: "
            "run python -m extproc.approvals.api.generate"
        )


def test_the_stub_imports_its_messages_from_this_package() -> None:
    from extproc.approvals.api import approvals_pb2, approvals_pb2_grpc

    assert approvals_pb2.DESCRIPTOR.package == "extproc.approvals.v1"
    assert approvals_pb2.DESCRIPTOR.name == "extproc/approvals/api/approvals.proto"
    assert hasattr(approvals_pb2_grpc, "ApprovalsStub")
    assert hasattr(approvals_pb2_grpc, "add_ApprovalsServicer_to_server")
