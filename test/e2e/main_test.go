// Package e2e tests what users of jeton touch directly, on a real control plane: the CRDs
// and samples through the real kubectl, and the manager binary as it is shipped.
package e2e

import (
	"testing"

	"github.com/jeton-dev/jeton/internal/testenv"
)

// operatorNamespace is the credentials namespace and the leader-election namespace.
const operatorNamespace = "jeton-system"

var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Main(m, func(e *testenv.Env) { env = e }, testenv.WithNamespaces(operatorNamespace))
}
