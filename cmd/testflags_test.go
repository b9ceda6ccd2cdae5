//go:build !jetontest

package main

import (
	"flag"
	"io"
	"strings"
	"testing"
)

// TestShippedBinaryRefusesTestProbeInterval: the shipped binary (built without the
// jetontest tag, as make build and the image do) does not know --test-probe-interval, so
// no deployment can probe faster than the CRD's 30 s minimum, not even through the chart's
// extraArgs: the manager refuses to start.
func TestShippedBinaryRefusesTestProbeInterval(t *testing.T) {
	fs := flag.NewFlagSet("jeton", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	_, err := parseFlags(fs, []string{"--test-probe-interval=1s"}, "ops")
	if err == nil || !strings.Contains(err.Error(), "flag provided but not defined: -test-probe-interval") {
		t.Fatalf("parseFlags(--test-probe-interval=1s) = %v, want the flag refused as unknown", err)
	}
}
