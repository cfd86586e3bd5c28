#!/usr/bin/env bash
# Build the real Pulumi engine pieces for the testbed from Go modules only
# (the Go module proxy is the one source; nothing is downloaded from release sites).
#
#   bash testbed/build_pulumi.sh        # prints progress and the elapsed seconds
#   PATH="$(bash testbed/build_pulumi.sh --print-bin):$PATH"   # bin dir only, no build
#
# Output: ${GKE_MESH_TESTBED_CACHE:-$HOME/.cache/gke-mesh-testbed}/pulumi-<cli>-command-<cmd>/bin
# Idempotent: a component whose binary is already there is skipped.
#
# What the module proxy serves (checked 2026-11-26, see testbed/ENGINE_RULES.md):
#   - github.com/pulumi/pulumi/pkg/v3: v3.272.0 is refused ("This module version is not
#     available"); v3.274.0 and v3.274.1 are served, so the CLI is pinned to v3.274.1 (a
#     newer engine than the Python SDK pulumi==3.272.0, which is a supported combination).
#   - github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3 (no tags of its
#     own) and github.com/pulumi/pulumi-command/provider (no tags of its own): every version
#     asked for is refused. The script still asks once for the pinned pseudo-versions below,
#     so it starts working by itself if the proxy ever serves them; until then it builds the
#     CLI only, says which component is missing and why, and exits 3.
#
# Exit codes: 0 all three built; 3 CLI built but a component could not be had; other = error.
set -euo pipefail

# ---- pins ---------------------------------------------------------------------------
PULUMI_CLI_VERSION=v3.274.1          # pkg/v3 + sdk/v3 module version of the CLI
PULUMI_PY_SDK_VERSION=3.272.0        # requirements.txt (informational: the exec shim is taken from sdk/v3 at this version)
# Python language host: module without tags; pseudo-version of a release commit the proxy
# would have to serve (v3.259.0 tag, 0ac56e876614). Refused as of 2026-11-26.
LANGHOST_MODULE=github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3
LANGHOST_MODULE_VERSION=v3.0.0-20260819165155-0ac56e876614
LANGHOST_PULUMI_VERSION=v3.259.0     # the pulumi/pulumi release at that commit (pkg/sdk layout it needs)
# pulumi-command provider v1.2.1 = commit 7f3eb6f3b77cd0fa3895ba437a695dd393f7dd25 (tag v1.2.1,
# 2026-03-03T23:59:22Z); its provider/ module has no tags. Refused as of 2026-11-26.
COMMAND_VERSION=v1.2.1
COMMAND_MODULE=github.com/pulumi/pulumi-command/provider
COMMAND_MODULE_VERSION=v0.0.0-20260303235922-7f3eb6f3b77c
# -------------------------------------------------------------------------------------

# shellcheck source=testbed/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
OUT="$TESTBED_CACHE_ROOT/pulumi-${PULUMI_CLI_VERSION}-command-${COMMAND_VERSION}"
BIN="$OUT/bin"
testbed_begin build_pulumi "$BIN" "$@"
need_go
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED="${CGO_ENABLED:-0}"

mkdir -p "$BIN"
WORK="$OUT/work"
rm -rf "$WORK"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

MISSING=()

# dir_of MODULE@VERSION -> prints the extracted module dir, or returns 1 with the error on stderr
dir_of() {
  local json dir err
  # run outside any go.mod so that no module's go.mod/go.sum is touched
  json=$(cd "$WORK" && go mod download -json "$1" 2>/dev/null || true)
  dir=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' | head -1)
  if [[ -n "$dir" && -d "$dir" ]]; then
    printf '%s\n' "$dir"
    return 0
  fi
  err=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/\1/p' | head -1)
  printf '%b\n' "${err:-go mod download $1 failed}" >&2
  return 1
}

# layout VERSION DEST -> DEST/pkg and DEST/sdk from the pkg/v3 and sdk/v3 module zips,
# which is the repository layout pkg/go.mod's `replace .../sdk/v3 => ../sdk` expects.
layout() {
  local v=$1 dest=$2 pkgdir sdkdir
  log "downloading github.com/pulumi/pulumi/pkg/v3@$v and sdk/v3@$v"
  pkgdir=$(dir_of "github.com/pulumi/pulumi/pkg/v3@$v") || return 1
  sdkdir=$(dir_of "github.com/pulumi/pulumi/sdk/v3@$v") || return 1
  mkdir -p "$dest"
  cp -r "$pkgdir" "$dest/pkg"
  cp -r "$sdkdir" "$dest/sdk"
  chmod -R u+w "$dest"
}

# ---- 1. Pulumi CLI ------------------------------------------------------------------
if [[ -x "$BIN/pulumi" ]] && "$BIN/pulumi" version 2>/dev/null | grep -qx "$PULUMI_CLI_VERSION"; then
  log "pulumi $PULUMI_CLI_VERSION already built: $BIN/pulumi (skip)"
else
  layout "$PULUMI_CLI_VERSION" "$WORK/cli"
  log "building pulumi CLI $PULUMI_CLI_VERSION (several minutes on 2 cores)"
  (cd "$WORK/cli/pkg" && go build -trimpath \
      -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_CLI_VERSION" \
      -o "$BIN/pulumi.tmp" ./cmd/pulumi)
  mv "$BIN/pulumi.tmp" "$BIN/pulumi"
  log "built $BIN/pulumi ($("$BIN/pulumi" version))"
fi

# ---- 2. Python language host + exec shim --------------------------------------------
if [[ -x "$BIN/pulumi-language-python" && -f "$BIN/pulumi-language-python-exec" ]]; then
  log "pulumi-language-python already built (skip)"
else
  log "asking for $LANGHOST_MODULE@$LANGHOST_MODULE_VERSION"
  if lhdir=$(dir_of "$LANGHOST_MODULE@$LANGHOST_MODULE_VERSION" 2>"$WORK/lh.err"); then
    layout "$LANGHOST_PULUMI_VERSION" "$WORK/lh"
    mkdir -p "$WORK/lh/sdk/python/cmd"
    cp -r "$lhdir" "$WORK/lh/sdk/python/cmd/pulumi-language-python"
    chmod -R u+w "$WORK/lh"
    log "building pulumi-language-python"
    (cd "$WORK/lh/sdk/python/cmd/pulumi-language-python" && go build -trimpath \
        -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$LANGHOST_PULUMI_VERSION" \
        -o "$BIN/pulumi-language-python.tmp" .)
    mv "$BIN/pulumi-language-python.tmp" "$BIN/pulumi-language-python"
    log "built $BIN/pulumi-language-python"
  else
    log "UNAVAILABLE $LANGHOST_MODULE@$LANGHOST_MODULE_VERSION: $(cat "$WORK/lh.err")"
    MISSING+=("pulumi-language-python")
  fi
  # The exec shim ships inside the sdk/v3 module zip (python/cmd/pulumi-language-python-exec);
  # take it at the Python SDK's version.
  shimdir=$(dir_of "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_PY_SDK_VERSION")
  install -m 0755 "$shimdir/python/cmd/pulumi-language-python-exec" "$BIN/pulumi-language-python-exec"
  log "installed $BIN/pulumi-language-python-exec (from sdk/v3@v$PULUMI_PY_SDK_VERSION)"
fi

# ---- 3. pulumi-command provider -----------------------------------------------------
if [[ -x "$BIN/pulumi-resource-command" ]]; then
  log "pulumi-resource-command already built (skip)"
else
  log "asking for $COMMAND_MODULE@$COMMAND_MODULE_VERSION ($COMMAND_VERSION)"
  if cmddir=$(dir_of "$COMMAND_MODULE@$COMMAND_MODULE_VERSION" 2>"$WORK/cmd.err"); then
    cp -r "$cmddir" "$WORK/command"
    chmod -R u+w "$WORK/command"
    log "building pulumi-resource-command $COMMAND_VERSION"
    (cd "$WORK/command" && go build -trimpath \
        -ldflags "-X github.com/pulumi/pulumi-command/provider/pkg/version.Version=${COMMAND_VERSION#v}" \
        -o "$BIN/pulumi-resource-command.tmp" ./cmd/pulumi-resource-command)
    mv "$BIN/pulumi-resource-command.tmp" "$BIN/pulumi-resource-command"
    log "built $BIN/pulumi-resource-command"
  else
    log "UNAVAILABLE $COMMAND_MODULE@$COMMAND_MODULE_VERSION: $(cat "$WORK/cmd.err")"
    MISSING+=("pulumi-resource-command")
  fi
fi

log "bin: $BIN"
ls -l "$BIN"
log "total elapsed: $(( $(date +%s) - TESTBED_START ))s"
if (( ${#MISSING[@]} )); then
  echo "build_pulumi: built the CLI; could not get from the Go module proxy: ${MISSING[*]}" >&2
  exit 3
fi
