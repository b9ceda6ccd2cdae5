package main

import (
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// Field 2 may hold spaces and parentheses; utime (14) = 250 ticks, stime (15) = 50.
	stat := "4242 (jeton (x) y) S 1 4242 4242 0 -1 4194560 9000 0 0 0 250 50 0 0 20 0 12 0 100 0 0"
	got, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 * time.Second; got != want {
		t.Errorf("cpu = %s, want %s", got, want)
	}
	for _, bad := range []string{"", "4242 (jeton S 1", "4242 (jeton) S 1 2 3"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q) succeeded, want an error", bad)
		}
	}
}

func TestParseKB(t *testing.T) {
	got, err := parseKB("\t  123456 kB")
	if err != nil || got != 123456*1024 {
		t.Errorf("parseKB = %v, %v; want %d", got, err, 123456*1024)
	}
	if _, err := parseKB("12 MB"); err == nil {
		t.Error("parseKB accepted a unit other than kB")
	}
}

func TestMaxInWindow(t *testing.T) {
	at := func(secs ...float64) []time.Time {
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		out := make([]time.Time, len(secs))
		for i, s := range secs {
			out[i] = base.Add(time.Duration(s * float64(time.Second)))
		}
		return out
	}
	tests := []struct {
		name  string
		times []time.Time
		want  int
	}{
		{"none", nil, 0},
		{"one", at(5), 1},
		{"every 30s: two per minute", at(0, 30, 60, 90, 120), 2},
		{"a burst counts together", at(0, 1, 2, 3, 100), 4},
		{"exactly 60s apart are in different windows", at(0, 60), 1},
		{"just under 60s apart share a window", at(0, 59.9), 2},
	}
	for _, tt := range tests {
		if got := maxInWindow(tt.times, time.Minute); got != tt.want {
			t.Errorf("%s: maxInWindow = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestParseMachineBusy(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want time.Duration
		ok   bool
	}{
		// user 100 + nice 0 + system 50 + irq 5 + softirq 5 ticks; idle, iowait and steal aside.
		{"cpu  100 0 50 900 10 5 5 40 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n", 160 * time.Second / clockTicks, true},
		{"cpu0 1 2 3 4 5 6 7 8\n", 0, false},
		{"cpu 1 2 3\n", 0, false},
		{"cpu 1 2 x 4 5 6 7 8\n", 0, false},
	} {
		got, err := parseMachineBusy(tc.stat)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseMachineBusy(%q) = %v, %v; want %v, ok %v", tc.stat, got, err, tc.want, tc.ok)
		}
	}
}
