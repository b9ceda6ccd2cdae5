package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// sample is one line of the Prometheus text exposition format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// samples is a parsed scrape.
type samples []sample

// parseProm parses the Prometheus text format (version 0.0.4) that controller-runtime's
// metrics endpoint serves. It keeps what the benchmark needs: metric name, labels and
// value; comments, timestamps and exemplars are dropped.
func parseProm(r io.Reader) (samples, error) {
	var out samples
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		s, err := parseSampleLine(text)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: %w", line, err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

func parseSampleLine(text string) (sample, error) {
	s := sample{labels: map[string]string{}}
	rest := text
	if i := strings.IndexAny(text, "{ "); i < 0 {
		return s, fmt.Errorf("no value in %q", text)
	} else {
		s.name, rest = text[:i], text[i:]
	}
	if strings.HasPrefix(rest, "{") {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, " ,")
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, `="`)
			if eq < 0 {
				return s, fmt.Errorf("bad label set in %q", text)
			}
			name := strings.TrimSpace(rest[:eq])
			rest = rest[eq+2:]
			var val strings.Builder
			closed := false
			for i := 0; i < len(rest); i++ {
				c := rest[i]
				if c == '\\' && i+1 < len(rest) {
					i++
					switch rest[i] {
					case 'n':
						val.WriteByte('\n')
					default:
						val.WriteByte(rest[i])
					}
					continue
				}
				if c == '"' {
					rest, closed = rest[i+1:], true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				return s, fmt.Errorf("unterminated label value in %q", text)
			}
			s.labels[name] = val.String()
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return s, fmt.Errorf("no value in %q", text)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, fmt.Errorf("bad value in %q: %w", text, err)
	}
	s.value = v
	return s, nil
}

// sum adds the values of every sample called name whose labels satisfy match (nil: all).
func (ss samples) sum(name string, match func(map[string]string) bool) float64 {
	total := 0.0
	for _, s := range ss {
		if s.name == name && (match == nil || match(s.labels)) {
			total += s.value
		}
	}
	return total
}

// labelIn matches samples whose label key has one of values.
func labelIn(key string, values ...string) func(map[string]string) bool {
	return func(l map[string]string) bool {
		v, ok := l[key]
		if !ok {
			return false
		}
		for _, want := range values {
			if v == want {
				return true
			}
		}
		return false
	}
}

// writeMethods are the HTTP methods that change something on the API server.
var writeMethods = []string{"POST", "PUT", "PATCH", "DELETE"}

// apiWrites is the number of write requests the process made to the API server, from
// client-go's rest_client_requests_total (every status code counts: a rejected write still
// costs the API server).
func (ss samples) apiWrites() float64 {
	return ss.sum("rest_client_requests_total", labelIn("method", writeMethods...))
}
