#!/usr/bin/env bash
# Builds the cluster binaries that envtest, the fuller test cluster (testenv.WithCluster)
# and the local run need into bin/: etcd, kube-apiserver, kubectl, kube-controller-manager
# and kube-scheduler from the pinned modules of hack/tools/go.mod, and KWOK (simulated
# nodes and pods) at KWOK_VERSION. Release downloads are out of reach here, so we compile
# them. Idempotent: nothing is rebuilt unless hack/tools/go.mod, go.sum or this script
# changed since the last build (or a binary is missing); the Go build cache makes a rebuild
# after `make clean` take seconds.
set -euo pipefail

# KWOK has its own dependency versions (k8s.io v0.36.1, newer grpc and otel): built with
# `go install pkg@version`, which follows its own go.mod and go.sum (checked against the
# checksum database), so that the pins of hack/tools stay those of Kubernetes v1.36.3.
KWOK_VERSION=v0.8.0

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin"
stamp="$bin/.control-plane.stamp"
binaries=(etcd kube-apiserver kubectl kube-controller-manager kube-scheduler kwok)
mkdir -p "$bin"

want=$(sha256sum "$root/hack/tools/go.mod" "$root/hack/tools/go.sum" "$root/hack/build-control-plane.sh" | sha256sum | cut -c1-16)
up_to_date() {
  [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] || return 1
  for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
}
if up_to_date; then
  exit 0
fi

cd "$root/hack/tools"
echo ">> building ${binaries[*]} from Go modules into bin/ (minutes when cold)"
export CGO_ENABLED=0
build() { go build -trimpath -ldflags='-s -w' -o "$bin/$1" "$2"; }
build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kubectl k8s.io/kubernetes/cmd/kubectl
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
GOBIN="$bin" go install -trimpath -ldflags='-s -w' "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
echo "$want" > "$stamp"
