package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// percentile returns the p-th percentile (0 < p <= 100) of xs by the nearest-rank method:
// the smallest value such that at least p% of the values are at or below it. Unlike
// interpolation, it always returns an observed value, so a p99 over 100 rotations is the
// 99th slowest, not a blend. NaN for no values.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 || p <= 0 || p > 100 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[max(rank, 1)-1]
}

// median returns the middle value of xs (the mean of the two middle ones for an even
// count). NaN for no values.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// seconds converts durations to float seconds, for percentile and median.
func seconds(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = d.Seconds()
	}
	return out
}

// fmtSeconds prints a duration in seconds with a precision suited to its size.
func fmtSeconds(s float64) string {
	switch {
	case math.IsNaN(s):
		return "n/a"
	case s < 1:
		return fmt.Sprintf("%.0f ms", s*1000)
	case s < 100:
		return fmt.Sprintf("%.1f s", s)
	default:
		return fmt.Sprintf("%.0f s", s)
	}
}

// fmtMiB prints a size in bytes as MiB.
func fmtMiB(b float64) string {
	if math.IsNaN(b) {
		return "n/a"
	}
	return fmt.Sprintf("%.0f MiB", b/(1<<20))
}

// siretFor returns a valid SIRET (14 digits, Luhn checksum) distinct for each i < 10^12:
// a "9" (no real SIREN starts so, and La Poste's 356… rule never applies), i on 12 digits,
// then the check digit.
func siretFor(i int) string {
	body := fmt.Sprintf("9%012d", i)
	for d := 0; d <= 9; d++ {
		s := body + string(rune('0'+d))
		if luhnValid(s) {
			return s
		}
	}
	panic("unreachable: one check digit always satisfies Luhn")
}

func luhnValid(s string) bool {
	sum := 0
	for i := range len(s) {
		d := int(s[len(s)-1-i] - '0')
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}
