"""The committed gRPC stubs are exactly what the protos generate (run `make proto` after editing a .proto)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def _plugin(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"{name} is not installed next to {sys.executable}; install the dev extras")
    return found


def test_committed_stubs_match_the_protos(tmp_path: Path) -> None:
    proto_files = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / "dreamforge" / "v1").glob("*.proto"))
    assert proto_files, "no .proto files found"
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{Path(protoc.__file__).parent / '_proto'}",
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
            f"--mypy_out={tmp_path}",
            f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
            f"--mypy_grpc_out={tmp_path}",
            *proto_files,
        ]
    )
    assert status == 0, "protoc failed"
    generated = sorted(p for p in (tmp_path / "dreamforge" / "v1").iterdir() if p.name.endswith(GENERATED_SUFFIXES))
    assert generated
    for fresh in generated:
        committed = PROTOS / "dreamforge" / "v1" / fresh.name
        assert committed.exists(), f"{committed.name} is not committed; run `make proto`"
        assert committed.read_text() == fresh.read_text(), f"{committed.name} is stale; run `make proto`"
