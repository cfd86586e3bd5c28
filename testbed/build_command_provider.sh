#!/usr/bin/env bash
# Build the gke-mesh stand-in `pulumi-resource-command` (testbed/command-provider: our own
# code on github.com/pulumi/pulumi-go-provider v1.3.0) from Go modules only.
#
#   bash testbed/build_command_provider.sh               # prints progress and the elapsed seconds
#   PATH="$(bash testbed/build_command_provider.sh --print-bin):$PATH"   # bin dir only, no build
#
# Output: ${GKE_MESH_TESTBED_CACHE:-$HOME/.cache/gke-mesh-testbed}/command-standin-<hash>/bin/pulumi-resource-command
# where <hash> is the sha256 (first 16 hex digits) of the module's go.mod, go.sum and main.go:
# an edit of the module gives a new folder, an unchanged module is not rebuilt (idempotent).
# The module is built from a copy, with -mod=readonly: go.mod/go.sum are never rewritten.
# Why a stand-in: the Go module proxy refuses github.com/pulumi/pulumi-command/provider
# (see testbed/build_pulumi.sh and testbed/ENGINE_RULES.md); see testbed/command-provider/README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODULE="$HERE/command-provider"
FILES=(go.mod go.sum main.go)

# shellcheck source=testbed/lib.sh
source "$HERE/lib.sh"
HASH=$(cd "$MODULE" && cat "${FILES[@]}" | sha256sum | cut -c1-16)
OUT="$TESTBED_CACHE_ROOT/command-standin-$HASH"
BIN="$OUT/bin"
testbed_begin build_command_provider "$BIN" "$@"

if [[ -x "$BIN/pulumi-resource-command" ]]; then
  log "already built: $BIN/pulumi-resource-command (module hash $HASH; skip)"
  log "total elapsed: $(( $(date +%s) - TESTBED_START ))s"
  exit 0
fi

need_go
export GOFLAGS="-mod=readonly -buildvcs=false"
export CGO_ENABLED="${CGO_ENABLED:-0}"

mkdir -p "$BIN"
WORK=$(mktemp -d "$OUT/work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cp "${FILES[@]/#/$MODULE/}" "$WORK/"

log "module hash $HASH; downloading modules (Go module proxy only)"
(cd "$WORK" && go mod download)
log "building pulumi-resource-command (stand-in, reports command 1.2.1; a few minutes on 2 cores)"
(cd "$WORK" && go build -trimpath -o "$BIN/pulumi-resource-command.tmp" .)
mv "$BIN/pulumi-resource-command.tmp" "$BIN/pulumi-resource-command"
log "built $BIN/pulumi-resource-command"
log "total elapsed: $(( $(date +%s) - TESTBED_START ))s"
