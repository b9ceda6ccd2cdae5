// Package namespaces reads the namespace lists of the manager's and the gateway's flags.
package namespaces

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// ParseList splits a comma-separated list of namespace names, trimming spaces and
// dropping duplicates, and rejects anything that is not a valid namespace name.
func ParseList(s string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, ns := range strings.Split(s, ",") {
		ns = strings.TrimSpace(ns)
		if ns == "" {
			continue
		}
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			return nil, fmt.Errorf("%q is not a valid namespace name: %s", ns, strings.Join(msgs, "; "))
		}
		if !seen[ns] {
			seen[ns] = true
			out = append(out, ns)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("at least one namespace is required")
	}
	return out, nil
}
