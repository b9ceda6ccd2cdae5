package testenv

import (
	"bytes"
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Option changes what Start starts.
type Option func(*options)

type options struct {
	cluster    bool
	nodes      int
	logDir     string
	namespaces []string
}

// WithCluster starts a fuller cluster beside etcd and kube-apiserver: kube-controller-manager
// (Deployments roll out to ReplicaSets, deleted namespaces are emptied and finalized, owned
// objects are garbage collected, every namespace gets its default ServiceAccount),
// kube-scheduler, and KWOK with simulated nodes, on which pods turn Running without a
// kubelet (nothing runs in them). The ServiceAccount admission plugin, which envtest
// disables, is on, as in a real cluster. It costs about three more processes and a few
// seconds of start-up: use it only in tests that need rollouts, pods, namespace deletion
// or garbage collection.
func WithCluster() Option {
	return func(o *options) { o.cluster = true }
}

// WithNodes sets how many simulated nodes WithCluster registers (default 2).
func WithNodes(n int) Option {
	return func(o *options) { o.nodes = n }
}

// WithLogDir writes the logs of the components WithCluster starts (one file each) into dir
// and keeps them after Stop; by default they go to a temporary directory that Stop removes.
func WithLogDir(dir string) Option {
	return func(o *options) { o.logDir = dir }
}

// WithNamespaces creates these namespaces once the control plane is up.
func WithNamespaces(names ...string) Option {
	return func(o *options) { o.namespaces = append(o.namespaces, names...) }
}

const (
	// kwokNodeAnnotation marks the nodes KWOK simulates (and the only ones it manages).
	kwokNodeAnnotation = "kwok.x-k8s.io/node"
	// componentStopTimeout is how long a component gets between SIGTERM and SIGKILL.
	componentStopTimeout = 20 * time.Second
	clusterStartTimeout  = 2 * time.Minute
)

// kwokStages is the node and pod lifecycle KWOK plays (see the file's header).
//
//go:embed kwok-stages.yaml
var kwokStages []byte

// component is one process of the fuller cluster, in its own process group so that a
// Ctrl-C meant for `make dev` reaches it only through Stop, in order.
type component struct {
	name    string
	cmd     *exec.Cmd
	log     *os.File
	healthz string // https URL polled until 200, or empty
	done    chan struct{}
	err     error
}

func (c *component) exited() bool {
	return closed(c.done)
}

// closed reports whether ch is closed, without waiting.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the component's process group and SIGKILL after
// componentStopTimeout, and waits for it to exit: nothing is left behind.
func (c *component) stop() error {
	defer c.log.Close()
	if c.exited() {
		return nil
	}
	pgid := c.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-c.done:
		return nil
	case <-time.After(componentStopTimeout):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-c.done
		return fmt.Errorf("%s did not stop within %s of SIGTERM; killed it", c.name, componentStopTimeout)
	}
}

// tail returns the last lines of the component's log, for an error message.
func (c *component) tail(n int) string {
	b, err := os.ReadFile(c.log.Name())
	if err != nil {
		return err.Error()
	}
	return LastLines(string(b), n)
}

// cluster is what WithCluster adds to the control plane.
type cluster struct {
	components []*component
	logDir     string
}

// startCluster starts kube-controller-manager, kube-scheduler and KWOK against the running
// control plane of e, registers the simulated nodes and waits until the cluster works.
func (e *Env) startCluster(o options) (err error) {
	c := &cluster{logDir: o.logDir}
	if c.logDir == "" {
		c.logDir = filepath.Join(e.dir, "logs")
	}
	if err := os.MkdirAll(c.logDir, 0o700); err != nil {
		return err
	}
	e.cluster = c
	assets := e.Environment.BinaryAssetsDirectory
	for _, bin := range []string{"kube-controller-manager", "kube-scheduler", "kwok"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			return fmt.Errorf("%s not found in %s: run `make control-plane` (or `make test`) first", bin, assets)
		}
	}

	// Each component authenticates with its own client certificate: its name shows in
	// the API server's logs and audit. system:masters keeps this test cluster simple.
	kubeconfigFor := func(user string) (string, error) {
		u, err := e.Environment.AddUser(envtest.User{Name: user, Groups: []string{"system:masters"}}, nil)
		if err != nil {
			return "", err
		}
		b, err := u.KubeConfig()
		if err != nil {
			return "", err
		}
		path := filepath.Join(e.dir, user[len("system:"):]+".kubeconfig")
		return path, os.WriteFile(path, b, 0o600)
	}

	certDir := e.Environment.ControlPlane.APIServer.CertDir
	caFile := filepath.Join(e.dir, "ca.crt")
	if err := os.WriteFile(caFile, e.Config.CAData, 0o600); err != nil {
		return err
	}
	kcmConfig, err := kubeconfigFor("system:kube-controller-manager")
	if err != nil {
		return err
	}
	kcmAddr, err := FreeLoopbackAddr()
	if err != nil {
		return err
	}
	if err := c.start("kube-controller-manager", filepath.Join(assets, "kube-controller-manager"), kcmAddr, nil,
		"--kubeconfig="+kcmConfig,
		"--bind-address=127.0.0.1", "--secure-port="+port(kcmAddr),
		"--leader-elect=false",
		// A node is NotReady after this long without a heartbeat (its Lease renewed by
		// KWOK every 10s): more than the default 50s, so that a loaded 2-core machine
		// does not make the nodes, and then every pod, NotReady (KWOK readies a pod once).
		"--node-monitor-grace-period=2m",
		// The key the API server verifies service-account tokens with (envtest's), and
		// the CA that kube-root-ca.crt publishes into every namespace.
		"--service-account-private-key-file="+filepath.Join(certDir, "sa-signer.key"),
		"--root-ca-file="+caFile,
		"--use-service-account-credentials=false",
	); err != nil {
		return err
	}

	schedConfig, err := kubeconfigFor("system:kube-scheduler")
	if err != nil {
		return err
	}
	schedAddr, err := FreeLoopbackAddr()
	if err != nil {
		return err
	}
	if err := c.start("kube-scheduler", filepath.Join(assets, "kube-scheduler"), schedAddr, nil,
		"--kubeconfig="+schedConfig,
		"--bind-address=127.0.0.1", "--secure-port="+port(schedAddr),
		"--leader-elect=false",
	); err != nil {
		return err
	}

	kwokConfig, err := kubeconfigFor("system:kwok-controller")
	if err != nil {
		return err
	}
	stages := filepath.Join(e.dir, "kwok-stages.yaml")
	if err := os.WriteFile(stages, kwokStages, 0o600); err != nil {
		return err
	}
	kwokDir := filepath.Join(e.dir, "kwok")
	if err := c.start("kwok", filepath.Join(assets, "kwok"), "",
		// Its work directory (default ~/.kwok, whose kwok.yaml it would also load) is ours.
		[]string{"KWOK_WORKDIR=" + kwokDir},
		"--kubeconfig="+kwokConfig,
		"--config="+stages,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector="+kwokNodeAnnotation+"=fake",
		"--cidr=10.244.0.1/16",
		"--node-ip=10.0.1.1",
		// Hold and renew each node's Lease, the heartbeat kube-controller-manager watches
		// (the kwok binary's default, 0, leaves nodes to turn NotReady after a minute).
		"--node-lease-duration-seconds=40",
	); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(context.Background(), clusterStartTimeout)
	defer cancel()
	for i := range o.nodes {
		if err := e.Client.Create(ctx, simulatedNode(fmt.Sprintf("kwok-node-%d", i))); err != nil {
			return fmt.Errorf("registering a simulated node: %w", err)
		}
	}
	return c.waitWorking(ctx, e.Client, o.nodes)
}

// start starts one component, its output into its log file. healthz is its secure
// serving address, polled by waitWorking, or empty.
func (c *cluster) start(name, bin, healthz string, env []string, args ...string) error {
	log, err := os.Create(filepath.Join(c.logDir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return fmt.Errorf("starting %s: %w", name, err)
	}
	comp := &component{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	if healthz != "" {
		comp.healthz = "https://" + healthz + "/healthz"
	}
	go func() {
		comp.err = cmd.Wait()
		close(comp.done)
	}()
	c.components = append(c.components, comp)
	return nil
}

// waitWorking waits until every component is healthy, the nodes are Ready and
// kube-controller-manager has created the default ServiceAccount: the cluster can run pods.
func (c *cluster) waitWorking(ctx context.Context, cl client.Client, nodes int) error {
	// The components serve a self-signed certificate; /healthz needs no credentials.
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback health check only
	defer hc.CloseIdleConnections()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var notYet error
		for _, comp := range c.components {
			if comp.exited() {
				return fmt.Errorf("%s exited at start: %v\n%s", comp.name, comp.err, comp.tail(30))
			}
			if comp.healthz != "" && notYet == nil {
				notYet = healthy(ctx, hc, comp)
			}
		}
		if notYet == nil {
			notYet = nodesReady(ctx, cl, nodes)
		}
		if notYet == nil {
			sa := &corev1.ServiceAccount{}
			if err := cl.Get(ctx, client.ObjectKey{Namespace: "default", Name: "default"}, sa); err != nil {
				notYet = fmt.Errorf("kube-controller-manager has not created ServiceAccount default/default: %w", err)
			}
		}
		if notYet == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the cluster did not start within %s: %w", clusterStartTimeout, notYet)
		case <-tick.C:
		}
	}
}

func healthy(ctx context.Context, hc *http.Client, comp *component) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, comp.healthz, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s is not serving yet: %w", comp.name, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s /healthz: %s", comp.name, resp.Status)
	}
	return nil
}

// nodesReady returns nil once n simulated nodes are Ready and schedulable (the node
// lifecycle controller has lifted the not-ready taint it puts on new nodes).
func nodesReady(ctx context.Context, cl client.Client, n int) error {
	nodes := &corev1.NodeList{}
	if err := cl.List(ctx, nodes); err != nil {
		return err
	}
	ready := 0
	for _, node := range nodes.Items {
		if node.Annotations[kwokNodeAnnotation] == "" {
			continue
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready++
			}
		}
		for _, taint := range node.Spec.Taints {
			if taint.Effect == corev1.TaintEffectNoSchedule {
				return fmt.Errorf("node %s still has taint %s", node.Name, taint.Key)
			}
		}
	}
	if ready < n {
		return fmt.Errorf("%d of %d simulated nodes Ready", ready, n)
	}
	return nil
}

// simulatedNode is a node that KWOK manages: it reports it Ready and plays the lifecycle
// of the pods bound to it. No taint: every workload may land there, as on a real node.
func simulatedNode(name string) *corev1.Node {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("128Gi"),
		corev1.ResourcePods:   resource.MustParse("1000"),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{kwokNodeAnnotation: "fake"},
			Labels: map[string]string{
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "kwok",
			},
		},
		Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
	}
}

// stop stops the components, last started first, each waited for.
func (c *cluster) stop() error {
	var errs []error
	for i := len(c.components) - 1; i >= 0; i-- {
		errs = append(errs, c.components[i].stop())
	}
	return errors.Join(errs...)
}

// ComponentLogs returns the last n lines of the log of every component WithCluster
// started, for a failure message (empty without WithCluster).
func (e *Env) ComponentLogs(n int) string {
	if e.cluster == nil {
		return ""
	}
	var b bytes.Buffer
	for _, comp := range e.cluster.components {
		fmt.Fprintf(&b, "--- %s (last %d lines)\n%s\n", comp.name, n, comp.tail(n))
	}
	return b.String()
}

// FreeLoopbackAddr returns a loopback address with a port nobody listens on right now
// (FreeAddr for code outside a test).
func FreeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// port is the port of a host:port address.
func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
