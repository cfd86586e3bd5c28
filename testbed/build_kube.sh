#!/usr/bin/env bash
# Builds gke-mesh's loopback Kubernetes control plane from Go modules only, plus Istio's
# CRDs at two versions, into
#   ${GKE_MESH_TESTBED_CACHE:-$HOME/.cache/gke-mesh-testbed}/kube-<k8s>-istio-<old>-<new>/
#     bin/kube-testbed             etcd (embedded) + kube-apiserver [+ kube-controller-manager], one process
#     bin/gke-gcloud-auth-plugin   stand-in credential plugin printing the test server's token
#     istio/<label>/crds.yaml      istio.io/api's kubernetes/customresourcedefinitions.gen.yaml
#     istio/<label>/served.json    per kind: group, plural, served versions, storage version
#     manifest.json                the pins and what was built
# and prints that folder as its only line on stdout (progress goes to stderr).
# Idempotent: a second run with the same pins and sources does nothing. Needs only `go`
# (with a module proxy) and flock; testbed/kube_server.py runs the result.
#
#   build_kube.sh --print-dir   never builds (needs no go, takes no lock): prints the folder and
#                               exits 0 when it holds a build, else exits 1 saying so; warns on
#                               stderr when go is on PATH and the build is older than the pins
#                               or sources (a stale build still runs). For tests that must not
#                               build (tests/test_kube_real.py).
set -euo pipefail

print_dir=0
case "${1:-}" in
  "") ;;
  --print-dir) print_dir=1 ;;
  *) echo "usage: build_kube.sh [--print-dir]" >&2; exit 2 ;;
esac

# ---- pins: change one and the next run rebuilds ------------------------------------------
K8S_VERSION=v1.37.2      # k8s.io/kubernetes; its staging modules (k8s.io/api, ...) at v0.37.2
ETCD_VERSION=v3.7.0      # go.etcd.io/etcd/server/v3 (embedded etcd); not below what k8s requires
# Istio CRDs, label=istio.io/api module version.
ISTIO_OLD=1.16=v0.0.0-20221109202042-b9e5d446a83d  # istio.io/client-go v1.16.0's istio.io/api: networking v1alpha3+v1beta1, security v1beta1
ISTIO_NEW=1.32=v1.32.0                              # networking and security also serve v1 (storage v1)
LAYOUT=1                 # bump when the output layout changes
# ------------------------------------------------------------------------------------------

start=$SECONDS
log() { printf '[build_kube %4ds] %s\n' "$((SECONDS - start))" "$*" >&2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mod="$here/kube"
cache="${GKE_MESH_TESTBED_CACHE:-$HOME/.cache/gke-mesh-testbed}"
old_label=${ISTIO_OLD%%=*}; old_version=${ISTIO_OLD#*=}
new_label=${ISTIO_NEW%%=*}; new_version=${ISTIO_NEW#*=}
out="$cache/kube-$K8S_VERSION-istio-$old_label-$new_label"
staging="v0.${K8S_VERSION#v1.}"   # v1.37.2 -> v0.37.2
export GOTOOLCHAIN=local GOFLAGS="-buildvcs=false"

# The stamp covers the pins and every source of the module (step 2 compares it).
compute_stamp() {
  {
    printf '%s\n' "$LAYOUT" "$K8S_VERSION" "$ETCD_VERSION" "$ISTIO_OLD" "$ISTIO_NEW" "$(go env GOVERSION)"
    (cd "$mod" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) | LC_ALL=C sort | xargs sha256sum)
  } | sha256sum | cut -d' ' -f1
}

if [ "$print_dir" = 1 ]; then
  if [ -x "$out/bin/kube-testbed" ] && [ -x "$out/bin/gke-gcloud-auth-plugin" ] && [ -f "$out/manifest.json" ]; then
    if command -v go >/dev/null && [ "$(cat "$out/.stamp" 2>/dev/null)" != "$(compute_stamp)" ]; then
      log "warning: $out is older than the pins or sources of testbed/kube; run testbed/build_kube.sh to rebuild"
    fi
    printf '%s\n' "$out"
    exit 0
  fi
  echo "build_kube.sh: no build at $out; run testbed/build_kube.sh (~10 min cold on 2 cores)" >&2
  exit 1
fi

command -v go >/dev/null || { echo "build_kube.sh: go is not on PATH" >&2; exit 1; }
mkdir -p "$cache"
exec 9>"$cache/.kube-build.lock"
flock 9   # one build at a time per cache

# 1. kube/go.mod must say what the pins say; when a pin moved, rewrite it from k8s.io/kubernetes's
#    own go.mod (every module it replaces with ./staging/src/... goes to its published release).
if ! grep -qx "	k8s.io/kubernetes $K8S_VERSION" "$mod/go.mod" ||
   ! grep -qx "	go.etcd.io/etcd/server/v3 $ETCD_VERSION" "$mod/go.mod" ||
   ! grep -q "k8s.io/api => k8s.io/api $staging\$" "$mod/go.mod"; then
  log "kube/go.mod does not match the pins: rewriting it for $K8S_VERSION / etcd $ETCD_VERSION"
  k8s_mod=$(cd "$(mktemp -d)" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
            sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [ -f "$k8s_mod" ] || { echo "build_kube.sh: could not download k8s.io/kubernetes@$K8S_VERSION" >&2; exit 1; }
  go_line=$(grep -m1 '^go ' "$k8s_mod")
  {
    printf 'module gke-mesh/testbed/kube\n\n%s\n\n' "$go_line"
    printf 'require (\n\tgo.etcd.io/etcd/server/v3 %s\n\tk8s.io/kubernetes %s\n)\n\n' "$ETCD_VERSION" "$K8S_VERSION"
    printf '// k8s.io/kubernetes replaces these with ./staging/src/...; a module that depends on it\n'
    printf '// must point each at its published release (v0.N.P for Kubernetes v1.N.P).\nreplace (\n'
    sed -n '/^replace (/,/^)/p' "$k8s_mod" | awk -v v="$staging" '$2 == "=>" && $3 ~ /^\.\/staging\// {printf "\t%s => %s %s\n", $1, $1, v}'
    printf ')\n'
  } > "$mod/go.mod"
  rm -f "$mod/go.sum"
  (cd "$mod" && go mod tidy)
  grep -qx "	go.etcd.io/etcd/server/v3 $ETCD_VERSION" "$mod/go.mod" ||
    { echo "build_kube.sh: k8s.io/kubernetes $K8S_VERSION needs a newer etcd than ETCD_VERSION=$ETCD_VERSION: $(grep 'etcd/server/v3 ' "$mod/go.mod")" >&2; exit 1; }
  log "kube/go.mod and go.sum rewritten: commit them"
fi

# 2. Up to date? The stamp covers the pins and every source of the module.
stamp=$(compute_stamp)
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] &&
   [ -x "$out/bin/kube-testbed" ] && [ -x "$out/bin/gke-gcloud-auth-plugin" ]; then
  log "up to date: $out"
  printf '%s\n' "$out"
  exit 0
fi

work=$(mktemp -d "$cache/.kube-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin"

# 3. Modules (a cold cache downloads ~300 MB; the proxy is the only source).
log "downloading modules for k8s.io/kubernetes $K8S_VERSION and etcd $ETCD_VERSION"
(cd "$mod" && go mod download)

# 4. Binaries. The version variables make the server report $K8S_VERSION (kubectl version, discovery).
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
v=k8s.io/component-base/version
ldflags="-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z"
log "building kube-testbed (kube-apiserver + kube-controller-manager + etcd; cold: ~10 min on 2 cores)"
(cd "$mod" && go build -trimpath -ldflags "$ldflags" -o "$work/bin/kube-testbed" .)
log "building gke-gcloud-auth-plugin stand-in"
(cd "$mod" && go build -trimpath -ldflags "-s -w" -o "$work/bin/gke-gcloud-auth-plugin" ./cmd/gke-gcloud-auth-plugin)

# 5. Istio CRDs, straight from the istio.io/api module.
for pin in "$ISTIO_OLD" "$ISTIO_NEW"; do
  label=${pin%%=*}; version=${pin#*=}
  log "istio.io/api@$version -> istio/$label/crds.yaml"
  dir=$(cd "$work" && go mod download -json "istio.io/api@$version" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [ -f "$dir/kubernetes/customresourcedefinitions.gen.yaml" ] ||
    { echo "build_kube.sh: istio.io/api@$version has no kubernetes/customresourcedefinitions.gen.yaml" >&2; exit 1; }
  mkdir -p "$work/istio/$label"
  cp "$dir/kubernetes/customresourcedefinitions.gen.yaml" "$work/istio/$label/crds.yaml"
  chmod 0644 "$work/istio/$label/crds.yaml"
  printf '%s\n' "$version" > "$work/istio/$label/module-version"
  "$work/bin/kube-testbed" crd-versions "$work/istio/$label/crds.yaml" > "$work/istio/$label/served.json"
done

cat > "$work/manifest.json" <<EOF
{
  "kubernetes": "$K8S_VERSION",
  "staging_modules": "$staging",
  "etcd": "$ETCD_VERSION",
  "go": "$(go env GOVERSION)",
  "istio": {"$old_label": "istio.io/api@$old_version", "$new_label": "istio.io/api@$new_version"},
  "istio_old": "$old_label",
  "istio_new": "$new_label",
  "build_seconds": $((SECONDS - start))
}
EOF
printf '%s\n' "$stamp" > "$work/.stamp"
chmod 0755 "$work"
rm -rf "$out"
mv "$work" "$out"
trap - EXIT
log "built $out ($(du -sh "$out" | cut -f1))"
printf '%s\n' "$out"
