#!/usr/bin/env bash
# Builds the control-plane binaries envtest and the local run need (etcd, kube-apiserver,
# kubectl) from Go modules into bin/. Release downloads are out of reach here, so we compile
# them from the pinned module versions in hack/tools/go.mod. Idempotent: a binary is
# rebuilt only when hack/tools/go.sum changed since it was built; the Go build cache makes
# a rebuild after `make clean` take seconds.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin"
stamp="$bin/.control-plane.stamp"
mkdir -p "$bin"

want=$(sha256sum "$root/hack/tools/go.mod" "$root/hack/tools/go.sum" | sha256sum | cut -c1-16)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$bin/etcd" && -x "$bin/kube-apiserver" && -x "$bin/kubectl" ]]; then
  exit 0
fi

cd "$root/hack/tools"
echo ">> building etcd, kube-apiserver and kubectl from Go modules into bin/ (minutes when cold)"
export CGO_ENABLED=0
go build -trimpath -ldflags='-s -w' -o "$bin/etcd" go.etcd.io/etcd/server/v3
go build -trimpath -ldflags='-s -w' -o "$bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
go build -trimpath -ldflags='-s -w' -o "$bin/kubectl" k8s.io/kubernetes/cmd/kubectl
echo "$want" > "$stamp"
