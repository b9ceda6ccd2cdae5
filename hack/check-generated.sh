#!/usr/bin/env bash
# Fails when the committed generated files (deepcopy, CRDs, RBAC role) differ from what
# controller-gen produces from the current sources. It regenerates into a temporary
# directory and compares with the files on disk, so it works the same in a clean clone,
# in a dirty work tree and without any git history.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
controller_gen=${CONTROLLER_GEN:-$root/bin/controller-gen}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

stale=0
report() {
  echo "STALE: $1" >&2
  stale=1
}

# Deepcopy: one run per API package (the packages carrying the object:generate marker).
for dir in $(grep -rl --include='*.go' '+kubebuilder:object:generate=true' api | xargs -n1 dirname | sort -u); do
  "$controller_gen" object paths="./$dir" output:object:dir="$tmp/object/$dir"
  if ! diff -u "$dir/zz_generated.deepcopy.go" "$tmp/object/$dir/zz_generated.deepcopy.go" >&2; then
    report "$dir/zz_generated.deepcopy.go"
  fi
done

# CRDs and the manager ClusterRole, exactly as `make manifests` generates them.
"$controller_gen" crd rbac:roleName=manager-role paths=./... \
  output:crd:artifacts:config="$tmp/crd" output:rbac:artifacts:config="$tmp/rbac"
mkdir -p "$tmp/crd"
if ! diff -ru config/crd/bases "$tmp/crd" >&2; then
  report "config/crd/bases"
fi
if [[ -f "$tmp/rbac/role.yaml" ]]; then
  if ! diff -u config/rbac/role.yaml "$tmp/rbac/role.yaml" >&2; then
    report "config/rbac/role.yaml"
  fi
elif [[ -f config/rbac/role.yaml ]] && grep -q '^rules:' config/rbac/role.yaml; then
  # controller-gen writes no role when no reconciler declares RBAC markers.
  report "config/rbac/role.yaml (no +kubebuilder:rbac markers left, but the file still grants rules)"
fi

if (( stale )); then
  echo >&2
  echo "Generated files are out of date (diff above). Run 'make generate manifests' and commit the result." >&2
  exit 1
fi
echo "generated files are up to date"
