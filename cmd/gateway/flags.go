package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/jeton-dev/jeton/internal/namespaces"
	"github.com/jeton-dev/jeton/internal/publicapi"
)

// config is the gateway's configuration, from its flags.
type config struct {
	listenAddr     string
	tlsCertDir     string
	probeAddr      string
	metricsAddr    string
	credentialsNS  []string
	namespace      string
	serviceName    string
	allowedHosts   publicapi.HostPolicy
	replicas       int
	addressBudget  int
	proberShare    int
	perTokenLimits string
	maxBodyBytes   int64
	upstreamTimout time.Duration
	printVersion   bool
	zap            zap.Options
}

func parseFlags(fs *flag.FlagSet, args []string, namespace string) (*config, error) {
	c := &config{namespace: namespace}
	var credNS, apiHosts string
	fs.StringVar(&c.listenAddr, "listen-address", ":8080",
		"Address the gateway serves client workloads on (HTTPS with --tls-cert-dir, plain HTTP otherwise).")
	fs.StringVar(&c.tlsCertDir, "tls-cert-dir", "",
		"Directory holding tls.crt and tls.key (a mounted cert-manager Certificate Secret), reloaded when they change; empty: plain HTTP.")
	fs.StringVar(&c.probeAddr, "health-probe-bind-address", ":8081", "Address of /healthz and /readyz.")
	fs.StringVar(&c.metricsAddr, "metrics-bind-address", ":8082", `Address of the Prometheus /metrics endpoint (plain HTTP); "0" disables it.`)
	fs.StringVar(&credNS, "credentials-namespaces", namespace,
		"Comma-separated namespaces holding the Habilitations and token Secrets (the manager's --credentials-namespaces).")
	fs.StringVar(&c.serviceName, "service-name", "jeton-gateway",
		"The gateway's own Service: its ready endpoints are the replicas that share the budgets.")
	fs.StringVar(&apiHosts, "allowed-api-hosts", "",
		"Comma-separated host[:port] the gateway may send tokens to besides the APIs' official hosts (the manager's --allowed-api-hosts).")
	fs.IntVar(&c.replicas, "replicas", 2,
		"Fewest replicas the budgets are split among, whatever the ready endpoints say (the Deployment's replicas).")
	fs.IntVar(&c.addressBudget, "address-budget-per-minute", 850,
		"Requests per minute all of jeton may send to one API host, the prober and every gateway replica together: keep it under the per-address limit "+
			"(1000/min per IP on API Entreprise and API Particulier; exceeding it bans the vendor's address for 12 hours).")
	fs.IntVar(&c.proberShare, "prober-share-per-minute", 60,
		"The part of --address-budget-per-minute kept for the manager's probes: the manager's --api-host-budget-per-minute.")
	fs.StringVar(&c.perTokenLimits, "per-token-limits", "",
		"Lower per-token limits than the APIs publish, e.g. APIEntreprise=100/1m,APIParticulier=10/1s (a contract that says less); "+
			"limits above the published ones are refused. The gateway sends at most 85% of each.")
	fs.Int64Var(&c.maxBodyBytes, "max-body-bytes", 64<<10, "Largest request body accepted (Démarches Numériques GraphQL queries).")
	fs.DurationVar(&c.upstreamTimout, "upstream-timeout", 30*time.Second, "How long to wait for an API's answer headers.")
	fs.BoolVar(&c.printVersion, "version", false, "Print the version, commit, build date and Go version, and exit.")
	c.zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q: jeton-gateway takes flags only", fs.Args())
	}
	var err error
	if c.credentialsNS, err = namespaces.ParseList(credNS); err != nil {
		return nil, fmt.Errorf("--credentials-namespaces: %w", err)
	}
	if c.allowedHosts, err = publicapi.NewHostPolicy(strings.Split(apiHosts, ",")); err != nil {
		return nil, fmt.Errorf("--allowed-api-hosts: %w", err)
	}
	switch {
	case c.replicas < 1:
		return nil, fmt.Errorf("--replicas must be at least 1, got %d", c.replicas)
	case c.proberShare < 0 || c.addressBudget <= c.proberShare:
		return nil, fmt.Errorf("--address-budget-per-minute (%d) must be above --prober-share-per-minute (%d), which must not be negative", c.addressBudget, c.proberShare)
	case c.addressBudget > 1000:
		return nil, fmt.Errorf("--address-budget-per-minute %d is above the APIs' 1000 requests/min per address", c.addressBudget)
	case c.maxBodyBytes < 1024:
		return nil, errors.New("--max-body-bytes must be at least 1024")
	case c.upstreamTimout <= 0:
		return nil, errors.New("--upstream-timeout must be positive")
	}
	return c, nil
}
