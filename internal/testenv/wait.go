package testenv

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Poll runs cond every interval until it returns nil (Poll returns nil) or timeout passes
// (Poll returns cond's last error that is not the deadline itself, the useful one for a
// message). Tests wait on conditions, never on the clock.
func Poll(timeout, interval time.Duration, cond func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var useful error
	for {
		last := cond(ctx)
		if last == nil {
			return nil
		}
		if ctx.Err() == nil || useful == nil {
			useful = last
		}
		select {
		case <-ctx.Done():
			return useful
		case <-tick.C:
		}
	}
}

// WaitFor polls cond until it returns nil, and fails the test once timeout has passed,
// with what it waited for and cond's last useful error (see Poll). cond's context ends at
// the deadline, so a slow API call cannot outlive the wait. It polls every 50ms, and every
// 5ms in a benchmark (t a *testing.B), where the wait is timed and must not be rounded up
// to the poll's interval. Tests wait on conditions, never on the clock.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) error) {
	t.Helper()
	interval := 50 * time.Millisecond
	if _, ok := t.(*testing.B); ok {
		interval = 5 * time.Millisecond
	}
	if err := Poll(timeout, interval, cond); err != nil {
		t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
	}
}

// ScrapeMetric sums the samples of the metric family name on a plain-HTTP Prometheus
// endpoint (url ends in /metrics) whose label set contains every one of labels (each
// written as in the exposition format, e.g. `method="POST"`); found says whether any did.
func ScrapeMetric(url, name string, labels ...string) (sum float64, found bool, err error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, name) {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		metric, labelSet, _ := strings.Cut(series, "{")
		if metric != name || !containsAll(labelSet, labels) {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return 0, false, fmt.Errorf("metric line %q: %v", line, err)
		}
		sum += v
		found = true
	}
	return sum, found, sc.Err()
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// LastLines returns the last n lines of s (a process's output, for a failure message).
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
