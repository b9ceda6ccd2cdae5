#!/usr/bin/env bash
# Runs every fuzz target for a short while (FUZZTIME, default 5s). Go fuzzes one target
# per invocation, hence one `go test` per target. New failing inputs land in
# <pkg>/testdata/fuzz/<target>/ and then replay in every plain `go test` run: commit them.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime="${FUZZTIME:-5s}"
targets=(
  "FuzzValidateSIRET ./internal/siret"
  "FuzzNormalize ./internal/token"
  "FuzzDecode ./internal/token"
  "FuzzClassify ./internal/probe"
  "FuzzClassifyNeverEchoes ./internal/probe"
  "FuzzCheckRequest ./internal/gateway"
  "FuzzGraphQLMutation ./internal/gateway"
)

for t in "${targets[@]}"; do
  read -r name pkg <<<"$t"
  echo "fuzzing ${name} in ${pkg} for ${fuzztime}"
  go test -run='^$' -fuzz="^${name}\$" -fuzztime="${fuzztime}" "${pkg}"
done
