//go:build !jetontest

package main

import "flag"

// registerTestFlags registers nothing in the shipped binary: --test-probe-interval, which
// probes faster than the CRD's 30 s minimum (and so faster than the public APIs' rate
// limits allow), must not be reachable from a deployment, not even through the chart's
// extraArgs. Given anyway, it fails the start as an unknown flag.
func registerTestFlags(*flag.FlagSet, *config) {}
