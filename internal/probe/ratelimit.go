package probe

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxServerWait caps how long a server-given wait is honoured, so a garbled header cannot
// stop probing for good. A day is far beyond any documented limit window.
const maxServerWait = 24 * time.Hour

// RetryAt returns the earliest time the API allows the next request with this token, from
// `Retry-After` (seconds or HTTP date) and from `RateLimit-Remaining: 0` with
// `RateLimit-Reset` (epoch seconds on API Entreprise; small values are read as seconds
// from now, as in the IETF draft). The zero time means the headers ask for no wait.
func RetryAt(header http.Header, now time.Time) time.Time {
	var at time.Time
	later := func(t time.Time) {
		if t.After(now.Add(maxServerWait)) {
			t = now.Add(maxServerWait)
		}
		if t.After(at) {
			at = t
		}
	}
	if v := strings.TrimSpace(header.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
			if secs > 0 {
				later(now.Add(time.Duration(min(secs, int64(maxServerWait/time.Second))) * time.Second))
			}
		} else if t, err := http.ParseTime(v); err == nil {
			later(t)
		}
	}
	if strings.TrimSpace(header.Get("RateLimit-Remaining")) == "0" {
		if reset, err := strconv.ParseInt(strings.TrimSpace(header.Get("RateLimit-Reset")), 10, 64); err == nil && reset > 0 {
			if reset > 1_000_000_000 { // an epoch timestamp (after 2001)
				later(time.Unix(reset, 0))
			} else {
				later(now.Add(time.Duration(reset) * time.Second))
			}
		}
	}
	if !at.After(now) {
		return time.Time{}
	}
	return at
}
