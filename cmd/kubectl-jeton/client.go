package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/cli"
)

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(jetonv1alpha1.AddToScheme(s))
	return s
}()

// session is a connection to the cluster of the kubeconfig, with the namespace to use.
type session struct {
	client.Client
	// namespace is -n, or the kubeconfig context's namespace; explicit says -n was given.
	namespace string
	explicit  bool
	server    string
}

func (o *options) session() (*session, error) {
	loader := o.config.ToRawKubeConfigLoader()
	// Without any kubeconfig, client-go would quietly talk to http://localhost:8080.
	if raw, err := loader.RawConfig(); err == nil && len(raw.Contexts) == 0 && ptrValue(o.config.APIServer) == "" && os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		return nil, errors.New("no kubeconfig found: pass --kubeconfig, set KUBECONFIG, or create ~/.kube/config (with `make dev`: export KUBECONFIG=$PWD/.dev/kubeconfig)")
	}
	cfg, err := o.config.ToRESTConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, errors.New("no kubeconfig found: pass --kubeconfig, set KUBECONFIG, or create ~/.kube/config (with `make dev`: export KUBECONFIG=$PWD/.dev/kubeconfig)")
		}
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	cfg.UserAgent = "kubectl-jeton"
	ns, explicit, err := loader.Namespace()
	if err != nil {
		return nil, fmt.Errorf("reading the namespace of the kubeconfig context: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", cfg.Host, err)
	}
	return &session{Client: c, namespace: ns, explicit: explicit, server: cfg.Host}, nil
}

// access describes a request, for error messages: verb resource (group) in namespace.
type access struct {
	verb, resource, group, namespace string
}

func (a access) String() string {
	r := a.resource
	if a.group != "" {
		r += "." + a.group
	}
	switch a.namespace {
	case "":
		return fmt.Sprintf("%s %s", a.verb, r)
	case allNamespaces:
		return fmt.Sprintf("%s %s in all namespaces", a.verb, r)
	}
	return fmt.Sprintf("%s %s in namespace %s", a.verb, r, a.namespace)
}

// allNamespaces marks a request across namespaces in access.namespace.
const allNamespaces = "*"

func jetonAccess(verb, resource, namespace string) access {
	return access{verb: verb, resource: resource, group: jetonv1alpha1.GroupVersion.Group, namespace: namespace}
}

// explain turns an error of request a into an actionable one. API errors never carry a
// Secret's values, and the plugin's own messages never include one.
func (s *session) explain(err error, a access) error {
	if err == nil {
		return nil
	}
	switch {
	case meta.IsNoMatchError(err) && a.group == jetonv1alpha1.GroupVersion.Group:
		return fmt.Errorf("the jeton CRDs are not installed in the cluster at %s (no resource %s.%s): install them from the jeton repository with `make install` (or `kubectl apply --server-side -k config/crd`)",
			s.server, a.resource, a.group)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("no access: you may not %s. Ask your cluster admin for the RBAC verb %q on resource %q of API group %q%s%s",
			a, a.verb, a.resource, groupName(a.group), scopeHint(a), roleHint(a))
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the API server at %s does not accept your credentials (401 Unauthorized): log in again, or check the user of your kubeconfig context", s.server)
	case isUnreachable(err):
		return fmt.Errorf("cannot reach the API server at %s: %v. Is the cluster running (`make dev` for the local one) and is your kubeconfig context the right one?", s.server, err)
	}
	return fmt.Errorf("cannot %s (API server %s): %w", a, s.server, err)
}

func ptrValue(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func groupName(g string) string {
	if g == "" {
		return "core"
	}
	return g
}

func scopeHint(a access) string {
	switch a.namespace {
	case "":
		return ""
	case allNamespaces:
		return " (cluster-wide: a ClusterRoleBinding, or pass -n NAMESPACE to look in one namespace)"
	}
	return " in namespace " + a.namespace
}

func roleHint(a access) string {
	switch {
	case a.group == jetonv1alpha1.GroupVersion.Group && (a.verb == "get" || a.verb == "list"):
		return "; the ClusterRole jeton-viewer-role of config/rbac grants it."
	case a.group == jetonv1alpha1.GroupVersion.Group:
		return "; the ClusterRole jeton-editor-role of config/rbac grants it."
	case a.resource == "secrets" && a.verb == "get" && a.namespace != "":
		return ". Reading a token Secret is for the admins of its namespace (who can read every token there)."
	}
	return "."
}

func isUnreachable(err error) bool {
	var netErr *net.OpError
	if errors.As(err, &netErr) {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host") || strings.Contains(msg, "i/o timeout")
}

// scope is where status and inventory look: one namespace when -n is given, else all.
func (s *session) scope() (namespace, description string) {
	if s.explicit {
		return s.namespace, "namespace " + s.namespace
	}
	return "", "all namespaces"
}

// fleet reads jeton's resources in namespace (all when empty). Namespace-scoped, the
// PublicClients are those its Habilitations name.
func (s *session) fleet(ctx context.Context, namespace string) (cli.Fleet, error) {
	where := namespace
	if where == "" {
		where = allNamespaces
	}
	var f cli.Fleet
	var habs jetonv1alpha1.HabilitationList
	if err := s.List(ctx, &habs, client.InNamespace(namespace)); err != nil {
		return f, s.explain(err, jetonAccess("list", "habilitations", where))
	}
	var tts jetonv1alpha1.TechnicalTokenList
	if err := s.List(ctx, &tts, client.InNamespace(namespace)); err != nil {
		return f, s.explain(err, jetonAccess("list", "technicaltokens", where))
	}
	var pcs jetonv1alpha1.PublicClientList
	if err := s.List(ctx, &pcs); err != nil {
		return f, s.explain(err, jetonAccess("list", "publicclients", ""))
	}
	f.Habilitations, f.TechnicalTokens = habs.Items, tts.Items
	named := map[string]bool{}
	for _, h := range habs.Items {
		named[h.Spec.ClientRef.Name] = true
	}
	for _, c := range pcs.Items {
		if namespace == "" || named[c.Name] {
			f.Clients = append(f.Clients, c)
		}
	}
	return f, nil
}
