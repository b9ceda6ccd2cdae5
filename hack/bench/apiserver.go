package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
)

// apiserverWrites reads the API server's own request counters (apiserver_request_total)
// and returns the write requests by "VERB resource[/subresource]". The operator's control
// plane serves no one else while it runs (the benchmark's setup is done and its informers
// only list and watch), so the difference between two of these is the operator's writes,
// broken down by kind: what rest_client_requests_total cannot say.
func apiserverWrites(ctx context.Context, cs kubernetes.Interface) (map[string]float64, error) {
	return apiserverRequests(ctx, cs, func(verb string) bool {
		switch verb {
		case "GET", "LIST", "WATCH", "CONNECT":
			return false
		}
		return true
	})
}

// apiserverReads is apiserverWrites for GET and LIST requests. The benchmark's informers
// have listed before the operator starts, and then only watch.
func apiserverReads(ctx context.Context, cs kubernetes.Interface) (map[string]float64, error) {
	return apiserverRequests(ctx, cs, func(verb string) bool { return verb == "GET" || verb == "LIST" })
}

// apiserverRequests counts apiserver_request_total by "VERB resource[/subresource]" for
// the verbs keep accepts.
func apiserverRequests(ctx context.Context, cs kubernetes.Interface, keep func(verb string) bool) (map[string]float64, error) {
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's /metrics: %w", err)
	}
	ss, err := parseProm(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, s := range ss {
		if s.name != "apiserver_request_total" {
			continue
		}
		if !keep(s.labels["verb"]) {
			continue
		}
		key := s.labels["verb"] + " " + s.labels["resource"]
		if sub := s.labels["subresource"]; sub != "" {
			key += "/" + sub
		}
		out[key] += s.value
	}
	return out, nil
}

// diffWrites returns after-before, per key, rounded per client, as "VERB resource n.nn".
func diffWrites(before, after map[string]float64, perClient int) string {
	var parts []string
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, d/float64(perClient)))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// diffCounts returns after-before, per key, for the keys that grew.
func diffCounts(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// fmtCounts formats counts as "KEY n, KEY n", sorted.
func fmtCounts(m map[string]float64) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, v))
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// apiserverWatches counts the watches open on the API server, by "WATCH resource". With
// client-go's streaming lists (WatchList), an informer's initial list is such a watch, not
// a LIST request.
func apiserverWatches(ctx context.Context, cs kubernetes.Interface) (map[string]float64, error) {
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's /metrics: %w", err)
	}
	ss, err := parseProm(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, s := range ss {
		if s.name == "apiserver_longrunning_requests" && s.labels["verb"] == "WATCH" {
			out["WATCH "+s.labels["resource"]] += s.value
		}
	}
	return out, nil
}

// profileAPIServer takes a CPU profile of kube-apiserver (its /debug/pprof, on by default)
// over d, after waiting delay, and writes it to path. It runs beside a measurement, so it
// only logs what fails.
func profileAPIServer(ctx context.Context, cs kubernetes.Interface, delay, d time.Duration, path string) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(delay):
	}
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").
		Param("seconds", strconv.Itoa(int(d.Seconds()))).DoRaw(ctx)
	if err == nil {
		err = os.WriteFile(path, raw, 0o644)
	}
	if err != nil {
		logf("kube-apiserver profile %s: %v", path, err)
		return
	}
	logf("kube-apiserver CPU profile over %s written to %s", d, path)
}
