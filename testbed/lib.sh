# Shared by the testbed build scripts (sourced, not run): the cache root, `--print-bin`,
# progress lines with elapsed seconds, and the Go toolchain check.
#   testbed_begin NAME BIN_DIR "$@"   prints BIN_DIR and exits when asked for --print-bin
TESTBED_CACHE_ROOT="${GKE_MESH_TESTBED_CACHE:-$HOME/.cache/gke-mesh-testbed}"

testbed_begin() {
  TESTBED_NAME="$1" TESTBED_BIN="$2"
  shift 2
  if [[ "${1:-}" == "--print-bin" ]]; then
    echo "$TESTBED_BIN"
    exit 0
  fi
  TESTBED_START=$(date +%s)
}

log() { echo "[$TESTBED_NAME +$(( $(date +%s) - TESTBED_START ))s] $*"; }

need_go() {
  command -v go >/dev/null || { echo "$TESTBED_NAME: go not found on PATH" >&2; exit 1; }
  export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
}
