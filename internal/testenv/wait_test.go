package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestPollReportsTheLastUsefulError(t *testing.T) {
	calls := 0
	err := Poll(100*time.Millisecond, 10*time.Millisecond, func(ctx context.Context) error {
		calls++
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("not yet (%d)", calls)
	})
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Poll = %v, want the condition's own error", err)
	}
	if err := Poll(time.Second, 10*time.Millisecond, func(context.Context) error { return nil }); err != nil {
		t.Fatalf("Poll of a met condition = %v", err)
	}
}

// fatalRecorder is a testing.TB that records Fatalf instead of ending the test.
type fatalRecorder struct {
	testing.TB
	fatal string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) { f.fatal = fmt.Sprintf(format, args...) }

func TestWaitForFailsWithWhatAndTheLastError(t *testing.T) {
	rec := &fatalRecorder{TB: t}
	WaitFor(rec, 100*time.Millisecond, "the thing", func(context.Context) error { return errors.New("not yet") })
	if !strings.Contains(rec.fatal, "the thing") || !strings.Contains(rec.fatal, "not yet") {
		t.Errorf("WaitFor failed with %q, want what it waited for and the last error", rec.fatal)
	}
	rec = &fatalRecorder{TB: t}
	calls := 0
	WaitFor(rec, 10*time.Second, "the third call", func(context.Context) error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if rec.fatal != "" || calls != 3 {
		t.Errorf("WaitFor of a condition met on the third call: %d calls, failure %q", calls, rec.fatal)
	}
}

func TestScrapeMetric(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `# HELP x_total x
# TYPE x_total counter
x_total{method="POST",code="201"} 3
x_total{method="GET",code="200"} 5
x_total_other 7
x_total{method="POST",code="409"} 1
`)
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
		found  bool
	}{
		{"x_total", nil, 9, true},
		{"x_total", []string{`method="POST"`}, 4, true},
		{"x_total", []string{`method="PUT"`}, 0, false},
		{"x_total_other", nil, 7, true},
		{"absent", nil, 0, false},
	} {
		sum, found, err := ScrapeMetric(srv.URL, tc.name, tc.labels...)
		if err != nil || sum != tc.want || found != tc.found {
			t.Errorf("ScrapeMetric(%s, %v) = %v, %v, %v; want %v, %v", tc.name, tc.labels, sum, found, err, tc.want, tc.found)
		}
	}
}

func TestLastLines(t *testing.T) {
	if got := LastLines("a\nb\nc\n", 2); got != "b\nc" {
		t.Errorf("LastLines = %q", got)
	}
	if got := LastLines("a", 5); got != "a" {
		t.Errorf("LastLines = %q", got)
	}
}
