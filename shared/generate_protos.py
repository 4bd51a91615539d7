"""Regenerates buildsync/proto/*_pb2*.py from the .proto files beside them.

Run from anywhere: `python shared/generate_protos.py`. Needs grpcio-tools and
googleapis-common-protos (for google/rpc/status.proto), both in
requirements-dev.txt. The generated modules are committed so that a packaged
function needs no compiler.
"""

import pathlib
import sys

import google.rpc
import grpc_tools
from grpc_tools import protoc

SHARED = pathlib.Path(__file__).resolve().parent
PROTO_DIR = SHARED / "buildsync" / "proto"


def main() -> int:
    includes = [
        SHARED,
        pathlib.Path(grpc_tools.__file__).parent / "_proto",
        pathlib.Path(google.rpc.__path__[0]).parent.parent,
    ]
    for proto in sorted(PROTO_DIR.glob("*.proto")):
        args = ["protoc", *(f"-I{path}" for path in includes)]
        args += [f"--python_out={SHARED}", f"--pyi_out={SHARED}", f"--grpc_python_out={SHARED}"]
        args.append(str(proto.relative_to(SHARED)))
        if protoc.main(args) != 0:
            print(f"protoc failed on {proto}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
