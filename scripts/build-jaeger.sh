#!/usr/bin/env bash
# Builds Jaeger v2 (the version pinned as a tool in tools/go.mod) into
# tools/bin/jaeger for the tests that read spans back from a real trace store
# (internal/jaegertest). The build takes about four minutes on two cores, so it
# is skipped while the binary is newer than tools/go.mod (a version bump there
# rebuilds it). `go install ...@version` cannot build Jaeger because its go.mod
# has a replace directive; building the tool from its own module, whose go.mod
# repeats that replace, works.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../tools"

bin=bin/jaeger
if [[ -x "$bin" && "$bin" -nt go.mod ]]; then
	echo "build-jaeger: $PWD/$bin is up to date" >&2
	exit 0
fi

echo "build-jaeger: building $PWD/$bin (takes minutes)" >&2
start=$SECONDS
mkdir -p bin
# Build to a temp name and rename, so an interrupted build never leaves a
# truncated binary that the up-to-date check above would accept.
tmp="$bin.tmp.$$"
trap 'rm -f "$tmp"' EXIT
go build -o "$tmp" github.com/jaegertracing/jaeger/cmd/jaeger
mv -f "$tmp" "$bin"
echo "build-jaeger: built $PWD/$bin in $((SECONDS - start)) s" >&2
