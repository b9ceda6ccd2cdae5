package main

import (
	"math"
	"strings"
	"testing"

	"github.com/jeton-dev/jeton/internal/siret"
)

func TestPercentile(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[99-i] = float64(i + 1) // 100..1, unsorted on purpose
	}
	tests := []struct {
		name string
		xs   []float64
		p    float64
		want float64
	}{
		{"p50 of 1..100 is 50", hundred, 50, 50},
		{"p99 of 1..100 is 99", hundred, 99, 99},
		{"p100 is the max", hundred, 100, 100},
		{"tiny p is the min", hundred, 0.1, 1},
		{"single value", []float64{7}, 99, 7},
		{"p99 of 10 values is the slowest", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 99, 10},
		{"p50 of 4 values is an observed one", []float64{4, 1, 3, 2}, 50, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.xs, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.xs, tt.p, got, tt.want)
			}
		})
	}
	for _, p := range []float64{0, -1, 101} {
		if got := percentile(hundred, p); !math.IsNaN(got) {
			t.Errorf("percentile(p=%v) = %v, want NaN", p, got)
		}
	}
	if got := percentile(nil, 50); !math.IsNaN(got) {
		t.Errorf("percentile(nil) = %v, want NaN", got)
	}
}

func TestPercentileLeavesInputUnsorted(t *testing.T) {
	xs := []float64{3, 1, 2}
	percentile(xs, 50)
	median(xs)
	if xs[0] != 3 || xs[1] != 1 || xs[2] != 2 {
		t.Errorf("input reordered to %v", xs)
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		xs   []float64
		want float64
	}{
		{[]float64{5}, 5},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{10, 10, 1000}, 10}, // an outlier run does not move it
	}
	for _, tt := range tests {
		if got := median(tt.xs); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.xs, got, tt.want)
		}
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v, want NaN", got)
	}
}

func TestFmtSeconds(t *testing.T) {
	tests := []struct {
		s    float64
		want string
	}{
		{0.0424, "42 ms"},
		{1.25, "1.2 s"},
		{42.44, "42.4 s"},
		{312.6, "313 s"},
		{math.NaN(), "n/a"},
	}
	for _, tt := range tests {
		if got := fmtSeconds(tt.s); got != tt.want {
			t.Errorf("fmtSeconds(%v) = %q, want %q", tt.s, got, tt.want)
		}
	}
}

// The benchmark's clients must pass the CRD's SIRET rule and the operator's check, and
// be distinct, or the run measures refusals instead of injections.
func TestSiretForIsValidAndDistinct(t *testing.T) {
	seen := map[string]bool{}
	for _, i := range []int{0, 1, 2, 9, 10, 999, 1000, 123456, 999_999_999_999} {
		s := siretFor(i)
		if len(s) != 14 || strings.Trim(s, "0123456789") != "" {
			t.Fatalf("siretFor(%d) = %q, want 14 digits", i, s)
		}
		if err := siret.Validate(s); err != nil {
			t.Errorf("siretFor(%d) = %q: %v", i, s, err)
		}
		if seen[s] {
			t.Errorf("siretFor(%d) = %q repeats an earlier SIRET", i, s)
		}
		seen[s] = true
	}
}
