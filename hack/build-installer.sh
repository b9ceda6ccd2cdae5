#!/usr/bin/env bash
# Writes the release bundle: config/default (namespace jeton-system, CRDs, RBAC, Deployment,
# metrics Service, PodDisruptionBudget, and the gateway of config/gateway) with the image (the
# manager's and the gateway's: one image) set to IMG, as one YAML file that
# `kubectl apply --server-side -f install.yaml` installs.
#
#   hack/build-installer.sh IMG OUT      e.g. hack/build-installer.sh ghcr.io/jeton-dev/jeton:v0.1.0 dist/install.yaml
#
# The image is set in a temporary overlay, so the working tree (config/manager) is left as is.
# VERSION (the Makefile passes it) is named in the header, with the license.
set -euo pipefail

if [[ $# -ne 2 || -z "$1" ]]; then
  echo "usage: $0 IMG OUT (IMG: repository[:tag][@sha256:digest])" >&2
  exit 2
fi
img=$1 out=$2
root=$(cd "$(dirname "$0")/.." && pwd)
kustomize=${KUSTOMIZE:-$root/bin/kustomize}

overlay=$(mktemp -d)
trap 'rm -rf "$overlay"' EXIT
# kustomize refuses absolute paths to a base: give it a relative one.
cat >"$overlay/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- $(realpath --relative-to="$overlay" "$root/config/default")
YAML
(cd "$overlay" && "$kustomize" edit set image "controller=$img")

mkdir -p "$(dirname "$out")"
{
  echo "# jeton ${VERSION:-(unversioned)} release bundle for image $img, generated from config/default. License: Apache-2.0."
  echo "# Install or upgrade: kubectl apply --server-side -f install.yaml"
  "$kustomize" build "$overlay"
} >"$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out (image $img)"
