package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"

	"github.com/jeton-dev/jeton/internal/cli"
)

// Where status finds the gateway: its pods carry this label (config/gateway) in the
// operator's namespace, and serve Prometheus metrics in plain HTTP on their port "metrics".
const (
	defaultGatewayNamespace = "jeton-system"
	gatewaySelector         = "app.kubernetes.io/name=jeton-gateway"
	gatewayMetricsPortName  = "metrics"
	gatewayMetricsPort      = "8082"
)

// Bounds of the scrape: a replica that does not answer within gatewayScrapeTimeout, or
// answers more than maxGatewayMetricsBytes (about 100,000 series), is reported not reached
// rather than holding status up or filling memory; at most maxGatewayPods pods are read.
const (
	gatewayScrapeTimeout   = 10 * time.Second
	maxGatewayMetricsBytes = 32 << 20
	maxGatewayPods         = 20
)

// scrapeGateway reads the metrics of the gateway's pods in namespace through the API
// server's pod proxy (GET /api/v1/namespaces/NS/pods/POD:PORT/proxy/metrics): no port
// forward, and the caller's own RBAC decides (get on pods/proxy). It never fails: what it
// could not read is said in the scrape.
func (o *options) scrapeGateway(ctx context.Context, namespace string) cli.GatewayScrape {
	s := cli.GatewayScrape{Namespace: namespace}
	cfg, err := o.config.ToRESTConfig()
	if err != nil {
		s.Unavailable = "cannot load the kubeconfig: " + err.Error()
		return s
	}
	cfg.UserAgent = "kubectl-jeton"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		s.Unavailable = "cannot connect: " + err.Error()
		return s
	}
	pods, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: gatewaySelector})
	switch {
	case apierrors.IsForbidden(err):
		s.Unavailable = fmt.Sprintf("not shown: you may not list pods in namespace %s (RBAC verb \"list\" on \"pods\"), where the gateway runs (--gateway-namespace)", namespace)
		return s
	case err != nil:
		s.Unavailable = fmt.Sprintf("not shown: cannot list pods in namespace %s: %v", namespace, err)
		return s
	case len(pods.Items) == 0:
		s.Unavailable = fmt.Sprintf("no gateway pod (label %s) in namespace %s: the gateway (optional) is not deployed, or runs elsewhere (--gateway-namespace)", gatewaySelector, namespace)
		return s
	}
	items := pods.Items
	slices.SortFunc(items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	if len(items) > maxGatewayPods {
		items = items[:maxGatewayPods]
	}
	s.Replicas = make([]cli.GatewayReplica, len(items))
	var wg sync.WaitGroup
	for i := range items {
		wg.Go(func() { s.Replicas[i] = scrapeGatewayPod(ctx, cs, &items[i]) })
	}
	wg.Wait()
	// Refused by RBAC: the same for every pod, so one line says it.
	for _, r := range s.Replicas {
		if r.Unreached == forbiddenProxy {
			s.Replicas = nil
			s.Unavailable = fmt.Sprintf("not shown: you may not read the gateway pods' metrics through the API server (RBAC verb \"get\" on \"pods/proxy\" in namespace %s)", namespace)
			break
		}
	}
	return s
}

// forbiddenProxy marks a replica the caller may not proxy to.
const forbiddenProxy = "forbidden"

func scrapeGatewayPod(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) cli.GatewayReplica {
	r := cli.GatewayReplica{Pod: pod.Name}
	if pod.Status.PodIP == "" {
		r.Unreached = fmt.Sprintf("not running (phase %s, no pod IP)", pod.Status.Phase)
		return r
	}
	ctx, cancel := context.WithTimeout(ctx, gatewayScrapeTimeout)
	defer cancel()
	// What client-go's ProxyGet sends, with the text format asked for explicitly.
	body, err := cs.CoreV1().RESTClient().Get().Namespace(pod.Namespace).Resource("pods").SubResource("proxy").
		Name(utilnet.JoinSchemeNamePort("http", pod.Name, metricsPort(pod))).Suffix("metrics").
		SetHeader("Accept", "text/plain;version=0.0.4").Stream(ctx)
	if err != nil {
		r.Unreached = proxyFailure(err)
		return r
	}
	defer func() { _ = body.Close() }()
	text, err := io.ReadAll(io.LimitReader(body, maxGatewayMetricsBytes+1))
	switch {
	case err != nil:
		r.Unreached = "reading its metrics: " + err.Error()
		return r
	case len(text) > maxGatewayMetricsBytes:
		r.Unreached = fmt.Sprintf("its metrics exceed %d MiB", maxGatewayMetricsBytes>>20)
		return r
	}
	if r.Families, err = cli.ParseGatewayMetrics(bytes.NewReader(text)); err != nil {
		r.Families = nil
		r.Unreached = "its /metrics is not the Prometheus text format: " + err.Error()
	}
	return r
}

// metricsPort is the pod's container port named "metrics" (the API server does not resolve
// port names for pods), else the default.
func metricsPort(pod *corev1.Pod) string {
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == gatewayMetricsPortName && p.ContainerPort > 0 {
				return fmt.Sprint(p.ContainerPort)
			}
		}
	}
	return gatewayMetricsPort
}

// proxyFailure says why the API server's proxy gave no metrics. The API server answers
// 503 when it cannot reach the pod: a NetworkPolicy that does not let the control plane
// reach port 8082 is the usual cause.
func proxyFailure(err error) string {
	var status apierrors.APIStatus
	switch {
	case apierrors.IsForbidden(err):
		return forbiddenProxy
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("no answer within %s", gatewayScrapeTimeout)
	case apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err):
		return "the API server could not reach it (does a NetworkPolicy keep the control plane off its metrics port?): " + err.Error()
	case errors.As(err, &status):
		return fmt.Sprintf("the API server's proxy answered %d: %v", status.Status().Code, err)
	}
	return err.Error()
}
