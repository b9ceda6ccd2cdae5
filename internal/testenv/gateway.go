package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// GatewayBinary builds the gateway (./cmd/gateway) into the Env's temporary directory, once
// per Env, as shipped (CGO off), and returns its path.
func (e *Env) GatewayBinary() (string, error) {
	e.gatewayOnce.Do(func() { e.gatewayBin, e.gatewayErr = e.build("jeton-gateway", "./cmd/gateway") })
	return e.gatewayBin, e.gatewayErr
}

// Gateway is a gateway process a test started. Its Manager fields give the process, its
// output, metrics (plain HTTP) and health probes; Addr (host:port) serves the clients.
type Gateway struct {
	*Manager
	Addr string
}

// URL is the gateway's base URL, as the manager's --gateway-url names it.
func (g *Gateway) URL() string { return "http://" + g.Addr }

// StartGateway starts the gateway binary as the user of kubeconfig on free loopback ports,
// with args after those flags (a flag given again overrides them).
func (e *Env) StartGateway(kubeconfig string, env []string, args ...string) (*Gateway, error) {
	bin, err := e.GatewayBinary()
	if err != nil {
		return nil, err
	}
	var addr, metricsAddr, probeAddr string
	for _, a := range []*string{&addr, &metricsAddr, &probeAddr} {
		if *a, err = FreeLoopbackAddr(); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(bin, append([]string{
		"--kubeconfig", kubeconfig,
		"--listen-address", addr,
		"--metrics-bind-address", metricsAddr,
		"--health-probe-bind-address", probeAddr,
	}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	m, err := RunManager(cmd, metricsAddr, probeAddr)
	if err != nil {
		return nil, err
	}
	return &Gateway{Manager: m, Addr: addr}, nil
}

// StartTestGateway is StartGateway for one test: it fails the test when the gateway does not
// start, and kills it when the test ends.
func (e *Env) StartTestGateway(t testing.TB, name, kubeconfig string, env []string, args ...string) *Gateway {
	t.Helper()
	g, err := e.StartGateway(kubeconfig, env, args...)
	if err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	g.KillAtEnd(t, name)
	return g
}
