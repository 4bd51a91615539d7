#!/usr/bin/env bash
# Regenerates tests/data/go_text_golden.json: what protobuf-go's String()
# writes for the details of tools/go_text/cases.py.
#
#   tools/go_text/run.sh PROTOBUF_GO_CHECKOUT [GO]
#
# PROTOBUF_GO_CHECKOUT: a git checkout (or bare repository) of
# protocolbuffers/protobuf-go; the tag used is $PROTOBUF_GO_TAG (default
# v1.33.0, whose text encoder is the same as Buildbucket's v1.36.11 and builds
# with Go 1.17+). GO: the go command (default: go).
set -euo pipefail
repo_root=$(cd "$(dirname "$0")/../.." && pwd)
checkout=$1
go=${2:-go}
tag=${PROTOBUF_GO_TAG:-v1.33.0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree=$work/src/google.golang.org/protobuf
mkdir -p "$tree"
git -C "$checkout" archive "$tag" | tar -x -C "$tree"
# The spacing seed is private to internal/detrand; the probe sets it.
printf 'package detrand\n\nfunc SetSeedForProbe(seed uint64) { randSeed = seed }\n' >"$tree/internal/detrand/probe.go"
mkdir -p "$tree/internal/cmd/gotextprobe"
cp "$repo_root/tools/go_text/probe.go" "$tree/internal/cmd/gotextprobe/main.go"
(cd "$tree" && GOPATH=$work GO111MODULE=off GOFLAGS= "$go" build -o "$work/probe" ./internal/cmd/gotextprobe)
cd "$repo_root"
.venv/bin/python -m tools.go_text.cases | "$work/probe" >"$work/go.json"
.venv/bin/python -m tools.go_text.cases --golden "$work/go.json" "$tag" >tests/data/go_text_golden.json
echo "wrote tests/data/go_text_golden.json"
