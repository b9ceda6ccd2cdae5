package main

import (
	"strings"
	"testing"
)

func TestExtract(t *testing.T) {
	for _, tc := range []struct {
		name, in, want, wantErr string
	}{
		{
			name: "rule groups become a rule file",
			in: `apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: alerts}
spec:
  groups:
  - name: g
    rules:
    - alert: A
      expr: up == 0
`,
			want: "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n",
		},
		{name: "other kind", in: "apiVersion: v1\nkind: ConfigMap\n", wantErr: "want a monitoring.coreos.com/v1 PrometheusRule"},
		{name: "no groups", in: "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nspec: {}\n", wantErr: "spec.groups is empty"},
		{name: "not YAML", in: "kind: [", wantErr: "not a valid PrometheusRule"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := extract([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
