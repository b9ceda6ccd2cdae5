// Package memlimit sets the Go runtime's soft memory limit from the container's, for the
// manager and the gateway alike.
package memlimit

import (
	"fmt"
	"strconv"
)

// Env carries the container's memory limit in bytes, from the downward API
// (resourceFieldRef limits.memory; config/manager and config/gateway set it).
const Env = "JETON_MEMORY_LIMIT"

// Soft returns the Go runtime's soft memory limit for a container limit given in
// bytes by Env: 80% of it. The rest is for what the runtime does not count and
// the container's limit does: the binary's own mapped pages (about 45 MB of resident file
// pages, measured at 10,000 clients). With it, the garbage collector works harder as the heap nears
// the limit instead of letting a large fleet's garbage push the process into an OOM kill;
// without it, the heap may grow to twice its live size before a collection. 0 when the
// operator sets it explicitly (GOMEMLIMIT, which the runtime honours itself) or when the
// variable is absent; an error when it does not hold a byte count.
func Soft(getenv func(string) string) (int64, error) {
	if getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	v := getenv(Env)
	if v == "" {
		return 0, nil
	}
	limit, err := strconv.ParseInt(v, 10, 64)
	if err != nil || limit <= 0 {
		return 0, fmt.Errorf("%s=%q: want the container's memory limit in bytes (resourceFieldRef limits.memory)", Env, v)
	}
	return limit / 5 * 4, nil
}
