package main

import (
	"flag"
	"io"
	"strings"
	"testing"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// TestPodSecurityFloorFlag: the floor defaults to baseline, the cluster admin may lower it
// (or raise it), and a level that does not exist is refused at start.
func TestPodSecurityFloorFlag(t *testing.T) {
	tests := []struct {
		args    []string
		want    jetonv1alpha1.PodSecurityLevel
		wantErr string
	}{
		{nil, jetonv1alpha1.PodSecurityBaseline, ""},
		{[]string{"--pod-security-floor=privileged"}, jetonv1alpha1.PodSecurityPrivileged, ""},
		{[]string{"--pod-security-floor=restricted"}, jetonv1alpha1.PodSecurityRestricted, ""},
		{[]string{"--pod-security-floor=Baseline"}, "", `--pod-security-floor: "Baseline" is not a Pod Security level`},
		{[]string{"--pod-security-floor="}, "", `--pod-security-floor: "" is not a Pod Security level`},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("jeton", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		cfg, err := parseFlags(fs, tt.args, "ops")
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: error %v, want %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tt.args, err)
		}
		if cfg.podSecurityFloor != tt.want {
			t.Errorf("%q: floor %q, want %q", tt.args, cfg.podSecurityFloor, tt.want)
		}
	}
}
