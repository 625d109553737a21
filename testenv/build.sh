#!/usr/bin/env bash
# Builds the local control plane's binaries from Go modules, into a cache keyed by
# sha256(go.mod, go.sum, Go version, this script, the orchestrator's sources).
# Prints the bin directory on its last line. A warm cache makes this a no-op.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

K8S_VERSION=v1.36.3
KWOK_VERSION=v0.8.0

key=$( { cat go.mod go.sum build.sh; go version; find cmd -type f -name '*.go' | sort | xargs cat; } | sha256sum | cut -c1-16)
cache=${FLAGGER_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flagger-testenv}
out="$cache/$key/bin"

if [ -x "$out/testenv" ] && [ -x "$out/kube-apiserver" ] && [ -x "$out/kwok" ] && [ -s "$out/kwok-stages.yaml" ]; then
  echo "testenv: binaries cached in $out" >&2
else
  echo "testenv: building control plane binaries into $out (cold build takes a while)" >&2
  start=$(date +%s)
  tmp="$out.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  go build -p "${TESTENV_BUILD_JOBS:-2}" -trimpath -buildvcs=false -ldflags "$ld" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl \
    ./cmd/testenv
  # kwok has its own module graph (no replace directives), so `go install` works for it.
  GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  # kwok's default "fast" stages (node init, lease heartbeat, pod ready/complete/delete) ship in its module;
  # they are taken from the module cache at build time, never committed here.
  stages="$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"; cat "$stages/$f"
  done > "$tmp/kwok-stages.yaml"
  rm -rf "$out"; mv "$tmp" "$out"
  echo "testenv: built in $(( $(date +%s) - start ))s" >&2
fi
mkdir -p "$here/bin"
for f in "$out"/*; do ln -sfn "$f" "$here/bin/$(basename "$f")"; done
echo "$here/bin"
