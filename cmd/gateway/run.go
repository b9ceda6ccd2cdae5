package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/gateway"
	"github.com/jeton-dev/jeton/internal/memlimit"
	"github.com/jeton-dev/jeton/internal/version"
)

// shutdownGrace is how long requests in flight may finish after SIGTERM.
const shutdownGrace = 25 * time.Second

// run serves until SIGTERM or SIGINT.
func run(cfg *config) error {
	log := zap.New(zap.UseFlagOptions(&cfg.zap)).WithName("gateway")
	ctrl.SetLogger(log)
	log.Info("starting", version.Get().KeysAndValues()...)
	// 80% of the container's memory limit: the collector works harder near it instead of
	// letting the heap reach twice its live size (10,000 Habilitations: docs/benchmarks.md).
	limit, err := memlimit.Soft(os.Getenv)
	if err != nil {
		return err
	}
	if limit > 0 {
		debug.SetMemoryLimit(limit)
		log.Info("Go soft memory limit set to 80% of the container's", "bytes", limit)
	}
	restCfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no Kubernetes configuration: %w", err)
	}
	perToken, err := gateway.ParsePerTokenLimits(cfg.perTokenLimits)
	if err != nil {
		return fmt.Errorf("--per-token-limits: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	c, err := newCache(restCfg, cfg)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := gateway.NewMetrics(reg)
	metrics.ExpectedReplicas.Set(float64(cfg.replicas))
	metrics.ReadyReplicas.Set(float64(cfg.replicas))

	store := gateway.NewStore(c, cfg.allowedHosts, cfg.credentialsNS[0])
	if err := store.Watch(ctx, c); err != nil {
		return err
	}
	limits := gateway.NewLimits(gateway.LimitsOptions{
		AddressBudgetPerMinute: cfg.addressBudget, ProberSharePerMinute: cfg.proberShare, Replicas: cfg.replicas, PerToken: perToken,
	})
	if err := watchReplicas(ctx, c, cfg, limits, metrics); err != nil {
		return err
	}
	handler := gateway.NewHandler(gateway.HandlerOptions{
		Store: store, Limits: limits, Metrics: metrics, Log: log.WithName("access"),
		MaxBodyBytes: cfg.maxBodyBytes, UpstreamTimeout: cfg.upstreamTimout,
	})

	var ready atomic.Bool
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	start := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	start("cache", func() error { return c.Start(ctx) })

	health := http.NewServeMux()
	health.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	health.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "caches not synced", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	servers := []*http.Server{newServer(cfg.probeAddr, health)}
	if cfg.metricsAddr != "0" {
		m := http.NewServeMux()
		m.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		servers = append(servers, newServer(cfg.metricsAddr, m))
	}
	data := newServer(cfg.listenAddr, handler)
	// Header and body sizes are bounded; slow clients cannot hold connections forever.
	data.MaxHeaderBytes = 32 << 10
	// The certificate of a mounted Secret (cert-manager renews it in place), watched and
	// reloaded as the manager's metrics certificate is.
	var tlsCert *certwatcher.CertWatcher
	if cfg.tlsCertDir != "" {
		if tlsCert, err = certwatcher.New(filepath.Join(cfg.tlsCertDir, "tls.crt"), filepath.Join(cfg.tlsCertDir, "tls.key")); err != nil {
			return fmt.Errorf("--tls-cert-dir: %w", err)
		}
		start("watching the TLS certificate", func() error { return tlsCert.Start(ctx) })
		data.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: tlsCert.GetCertificate}
	}
	for _, s := range servers {
		start("serving "+s.Addr, s.ListenAndServe)
	}

	if !c.WaitForCacheSync(ctx) {
		return errors.New("the caches did not sync")
	}
	if err := store.Resync(ctx); err != nil {
		return fmt.Errorf("reading the Habilitations: %w", err)
	}
	go reportBudget(ctx, store, limits, metrics)
	ln, err := net.Listen("tcp", cfg.listenAddr)
	if err != nil {
		return err
	}
	start("serving "+cfg.listenAddr, func() error {
		if tlsCert != nil {
			return data.ServeTLS(ln, "", "")
		}
		return data.Serve(ln)
	})
	ready.Store(true)
	log.Info("serving", "address", ln.Addr().String(), "tls", tlsCert != nil, "habilitations", store.Len())

	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	ready.Store(false)
	log.Info("stopping: requests in flight may finish", "grace", shutdownGrace.String())
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	_ = data.Shutdown(sctx)
	for _, s := range servers {
		_ = s.Shutdown(sctx)
	}
	stop()
	wg.Wait()
	return err
}

func newServer(addr string, h http.Handler) *http.Server {
	return &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: nil}
}

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(jetonv1alpha1.AddToScheme(s))
	return s
}

// newCache watches only what the gateway reads: Habilitations and Secrets of the
// credentials namespaces, PublicClients, and its own Service's EndpointSlices. Its RBAC
// allows no more.
func newCache(restCfg *rest.Config, cfg *config) (cache.Cache, error) {
	credNS := map[string]cache.Config{}
	for _, ns := range cfg.credentialsNS {
		credNS[ns] = cache.Config{}
	}
	return cache.New(restCfg, cache.Options{
		Scheme: newScheme(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:              {Namespaces: credNS},
			&jetonv1alpha1.Habilitation{}: {Namespaces: credNS},
			&discoveryv1.EndpointSlice{}:  {Namespaces: map[string]cache.Config{cfg.namespace: {}}, Label: labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: cfg.serviceName})},
			&jetonv1alpha1.PublicClient{}: {},
		},
		DefaultTransform: cache.TransformStripManagedFields(),
	})
}

// watchReplicas splits the budgets among the ready replicas of the gateway's Service (at
// least --replicas): N replicas never send more than the budget together.
func watchReplicas(ctx context.Context, c cache.Cache, cfg *config, limits *gateway.Limits, metrics *gateway.Metrics) error {
	inf, err := c.GetInformer(ctx, &discoveryv1.EndpointSlice{})
	if err != nil {
		return err
	}
	recount := func(any) {
		var list discoveryv1.EndpointSliceList
		if err := c.List(ctx, &list, client.InNamespace(cfg.namespace), client.MatchingLabels{discoveryv1.LabelServiceName: cfg.serviceName}); err != nil {
			return
		}
		n := max(cfg.replicas, gateway.ReadyEndpoints(list.Items))
		limits.SetReplicas(n)
		metrics.ReadyReplicas.Set(float64(gateway.ReadyEndpoints(list.Items)))
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: recount, UpdateFunc: func(_, o any) { recount(o) }, DeleteFunc: recount,
	})
	return err
}

// reportBudget keeps the budget gauge of every API host in use current.
func reportBudget(ctx context.Context, store *gateway.Store, limits *gateway.Limits, metrics *gateway.Metrics) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, host := range store.Hosts() {
				metrics.BudgetRemaining.WithLabelValues(host).Set(limits.HostRemaining(host, now))
			}
		}
	}
}
