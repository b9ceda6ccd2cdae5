// Command promrules prints the rule groups of a Prometheus Operator PrometheusRule as a
// plain Prometheus rule file, so that promtool can check and test the rules jeton ships:
//
//	go run ./hack/promrules config/prometheus/prometheusrule.yaml > rules.yaml
package main

import (
	"errors"
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: promrules PROMETHEUSRULE.yaml > rules.yaml")
		os.Exit(2)
	}
	in, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "promrules:", err)
		os.Exit(1)
	}
	out, err := extract(in)
	if err != nil {
		fmt.Fprintf(os.Stderr, "promrules: %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	if _, err := os.Stdout.Write(out); err != nil {
		fmt.Fprintln(os.Stderr, "promrules:", err)
		os.Exit(1)
	}
}

// extract returns the .spec of a PrometheusRule (a {groups: [...]} document, which is the
// Prometheus rule file format) as YAML.
func extract(manifest []byte) ([]byte, error) {
	var rule struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Spec       struct {
			Groups []map[string]any `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(manifest, &rule); err != nil {
		return nil, fmt.Errorf("not a valid PrometheusRule: %w", err)
	}
	if rule.Kind != "PrometheusRule" || rule.APIVersion != "monitoring.coreos.com/v1" {
		return nil, fmt.Errorf("want a monitoring.coreos.com/v1 PrometheusRule, got %s %s", rule.APIVersion, rule.Kind)
	}
	if len(rule.Spec.Groups) == 0 {
		return nil, errors.New("spec.groups is empty: there are no rules to check")
	}
	return yaml.Marshal(map[string]any{"groups": rule.Spec.Groups})
}
