#!/usr/bin/env bash
# Checks and unit-tests jeton's alerting rules with promtool:
#   - extracts the rule groups from config/prometheus/prometheusrule.yaml (a PrometheusRule),
#   - promtool check rules on them,
#   - promtool test rules config/prometheus/tests/*.yaml (their rule_files: [rules.yaml]).
# promtool comes from the Debian package "prometheus":
#   apt-get update && apt-get install -y --no-install-recommends prometheus
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
promtool="${PROMTOOL:-promtool}"

if ! command -v "$promtool" >/dev/null 2>&1; then
  echo "test-alerts: promtool not found (PROMTOOL=${promtool})." >&2
  echo "  Install it: apt-get update && apt-get install -y --no-install-recommends prometheus" >&2
  echo "  or point PROMTOOL at a promtool binary." >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The tests name their rule file "rules.yaml", relative to themselves: run them next to it.
(cd "$root" && go run ./hack/promrules config/prometheus/prometheusrule.yaml) > "$work/rules.yaml"
shopt -s nullglob
tests=("$root"/config/prometheus/tests/*.yaml)
if [ "${#tests[@]}" -eq 0 ]; then
  echo "test-alerts: no tests in config/prometheus/tests/" >&2
  exit 1
fi
cp "${tests[@]}" "$work/"

cd "$work"
"$promtool" check rules rules.yaml
"$promtool" test rules "${tests[@]##*/}"
