// Package gateway tests jeton's egress gateway end to end (issue 22, docs/gateway.md): the
// real manager and the real gateway binaries on a real control plane, the API emulator
// upstream on loopback, and client calls as an application in a client namespace makes them.
package gateway

import (
	"testing"

	"github.com/jeton-dev/jeton/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Main(m, func(e *testenv.Env) { env = e })
}
