// Package testenv starts a real control plane (etcd + kube-apiserver built by
// hack/build-control-plane.sh into bin/) for tests, with jeton's CRDs installed, and
// gives tests a client, a kubeconfig file and the real kubectl. WithCluster adds
// kube-controller-manager, kube-scheduler and KWOK's simulated nodes, for the tests that
// need rollouts, pods, namespace deletion or garbage collection.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// Env is a running control plane.
type Env struct {
	Environment *envtest.Environment
	Config      *rest.Config
	Client      client.Client
	Scheme      *runtime.Scheme
	// Kubeconfig is the path of a kubeconfig file for an admin user, for kubectl.
	Kubeconfig string
	// Root is the repository root.
	Root string
	dir  string
	// cluster is what WithCluster started, or nil.
	cluster *cluster
	// cleanups run before the control plane stops, last registered first.
	cleanups []func()
	// The manager binary ManagerBinary built, or why it could not.
	managerOnce sync.Once
	managerBin  string
	gatewayOnce sync.Once
	gatewayBin  string
	gatewayErr  error
	managerErr  error
}

// Cleanup registers f to run when the Env stops, before the control plane does: stopping a
// manager first lets kube-apiserver shut down at once instead of waiting on its watches.
func (e *Env) Cleanup(f func()) {
	e.cleanups = append(e.cleanups, f)
}

// Scheme returns a scheme with the built-in types and jeton's API.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(jetonv1alpha1.AddToScheme(s))
	return s
}

// RepoRoot walks up from the working directory to the directory holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "api")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod of the jeton module not found above the working directory")
		}
		dir = parent
	}
}

// Start starts etcd and kube-apiserver and installs the CRDs from config/crd/bases; with
// WithCluster, the rest of a cluster too; with WithNamespaces, it creates namespaces. Call it
// from TestMain and Stop the result when the tests are done.
func Start(opts ...Option) (*Env, error) {
	o := options{nodes: 2}
	for _, opt := range opts {
		opt(&o)
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin")
	}
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		return nil, fmt.Errorf("kube-apiserver not found in %s: run `make control-plane` (or `make test`) first", assets)
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:        []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		BinaryAssetsDirectory:    assets,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  1 * time.Minute,
	}
	if o.cluster {
		// envtest disables it because nothing creates the default ServiceAccount without
		// kube-controller-manager; with it, pods get their service-account token volume as
		// in a real cluster.
		env.ControlPlane.GetAPIServer().Configure().Disable("disable-admission-plugins")
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	e := &Env{Environment: env, Config: cfg, Scheme: NewScheme(), Root: root}
	stopOnErr := func(err error) (*Env, error) { _ = e.Stop(); return nil, err }

	e.Client, err = client.New(cfg, client.Options{Scheme: e.Scheme})
	if err != nil {
		return stopOnErr(err)
	}
	user, err := env.AddUser(envtest.User{Name: "jeton-test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return stopOnErr(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return stopOnErr(err)
	}
	e.dir, err = os.MkdirTemp("", "jeton-testenv-")
	if err != nil {
		return stopOnErr(err)
	}
	e.Kubeconfig = filepath.Join(e.dir, "kubeconfig")
	if err := os.WriteFile(e.Kubeconfig, kubeconfig, 0o600); err != nil {
		return stopOnErr(err)
	}
	if o.cluster {
		if err := e.startCluster(o); err != nil {
			return stopOnErr(fmt.Errorf("starting the cluster components: %w", err))
		}
	}
	for _, ns := range o.namespaces {
		if err := e.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return stopOnErr(fmt.Errorf("creating namespace %s: %w", ns, err))
		}
	}
	return e, nil
}

// Stop stops the control plane (the cluster components first, then kube-apiserver and
// etcd, each waited for) and removes temporary files.
func (e *Env) Stop() error {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
	e.cleanups = nil
	var errs []error
	if e.cluster != nil {
		errs = append(errs, e.cluster.stop())
		e.cluster = nil
	}
	errs = append(errs, e.Environment.Stop())
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
	return errors.Join(errs...)
}

// Kubectl runs the real kubectl (bin/kubectl) against the control plane. stdin may be nil.
func (e *Env) Kubectl(ctx context.Context, stdin []byte, args ...string) (stdout, stderr string, err error) {
	kubectl := filepath.Join(e.Environment.BinaryAssetsDirectory, "kubectl")
	cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", e.Kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// Main is a TestMain body: it starts the control plane (with opts), runs the tests with it
// and stops it.
func Main(m *testing.M, set func(*Env), opts ...Option) {
	os.Exit(Run(func(e *Env) int {
		set(e)
		return m.Run()
	}, opts...))
}

// Run is Main for a TestMain that does more around the tests: it starts the control plane
// (with opts), calls run with it, stops it and returns run's exit code (1 when the control
// plane does not start). When run fails, it prints the end of the logs of the components
// WithCluster started: a failure on a cluster is often explained there.
func Run(run func(*Env) int, opts ...Option) (code int) {
	env, err := Start(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	defer func() {
		if code != 0 {
			fmt.Fprint(os.Stderr, env.ComponentLogs(20))
		}
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "testenv: stopping:", err)
		}
	}()
	return run(env)
}
