// Package e2e tests what users of jeton touch directly, on a real control plane: the CRDs
// and samples through the real kubectl, and the manager binary as it is shipped.
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/jeton-dev/jeton/internal/testenv"
)

// operatorNamespace is the credentials namespace and the leader-election namespace.
const operatorNamespace = "jeton-system"

var (
	env *testenv.Env
	// binDir holds the manager binary, built once by managerBinary.
	binDir string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: stopping the control plane:", err)
		}
	}()
	if binDir, err = os.MkdirTemp("", "jeton-e2e-bin-"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(binDir)

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: creating namespace:", err)
		return 1
	}
	return m.Run()
}
