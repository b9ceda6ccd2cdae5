package gateway

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/testenv"
)

// world is one test's cluster state: a credentials namespace, the emulator upstream, the
// manager and gateway replicas, and every secret value the logs must never show.
type world struct {
	t      *testing.T
	credNS string
	emu    *emulator.Server
	emuURL string
	mgr    *testenv.Manager
	gws    []*testenv.Gateway

	mu      sync.Mutex
	secrets []string // tokens and gateway credentials
}

type worldOptions struct {
	replicas    int
	emuOptions  []emulator.Option
	gatewayArgs []string
}

var siretRand = rand.New(rand.NewPCG(22, 7))
var siretMu sync.Mutex

func newSIRET() string {
	siretMu.Lock()
	defer siretMu.Unlock()
	return testenv.RandomSIRET(siretRand)
}

// newWorld starts the emulator, o.replicas gateways and the manager, for credentials
// namespace credNS (created here).
func newWorld(t *testing.T, credNS string, o worldOptions) *world {
	t.Helper()
	ctx := t.Context()
	if o.replicas == 0 {
		o.replicas = 1
	}
	w := &world{t: t, credNS: credNS, emu: emulator.New(o.emuOptions...)}
	srv := httptest.NewServer(w.emu)
	t.Cleanup(srv.Close)
	w.emuURL = srv.URL
	emuHost := strings.TrimPrefix(srv.URL, "http://")
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: credNS}}); err != nil {
		t.Fatal(err)
	}
	for i := range o.replicas {
		args := append([]string{"--credentials-namespaces", credNS, "--allowed-api-hosts", emuHost,
			"--replicas", fmt.Sprint(o.replicas), "--zap-log-level", "info"}, o.gatewayArgs...)
		w.gws = append(w.gws, env.StartTestGateway(t, fmt.Sprintf("gateway-%d", i), env.Kubeconfig, []string{"POD_NAMESPACE=" + credNS}, args...))
	}
	w.mgr = env.StartTestManager(t, "manager", env.Kubeconfig, nil,
		"--leader-elect=false", "--credentials-namespaces", credNS, "--allowed-api-hosts", emuHost,
		"--gateway-url", w.gws[0].URL(), "--metrics-secure=false")
	for _, g := range w.gws {
		testenv.WaitFor(t, time.Minute, "the gateway ready", g.Ready)
	}
	t.Cleanup(w.scanLogs)
	return w
}

// tenant is a public client with one Habilitation delivered through the gateway.
type tenant struct {
	name, namespace, siret string
	hab                    *jetonv1alpha1.Habilitation
	tokenID                string // the emulator's id of its API token
	token                  string
	credential             string // the TOKEN of its injected Secret
}

// addClient creates PublicClient name (namespace name) and its Habilitation on api with a
// fresh emulator token, delivered through the gateway, and waits for the injected Secret.
func (w *world) addClient(name string, api jetonv1alpha1.API, mutate ...func(*jetonv1alpha1.Habilitation)) *tenant {
	t := w.t
	t.Helper()
	ctx := t.Context()
	c := &tenant{name: name, namespace: name, siret: newSIRET()}
	scopes := []string{"unites_legales_etablissements_insee"}
	if api == jetonv1alpha1.DemarchesNumeriques {
		scopes = []string{"1"}
	}
	tok, id, err := w.emu.Mint(api, emulator.MintOptions{Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	c.token, c.tokenID = tok, id
	w.remember(tok)
	pc := &jetonv1alpha1.PublicClient{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: jetonv1alpha1.PublicClientSpec{DisplayName: "Commune " + name, SIRET: c.siret, Namespace: name}}
	src, h := testenv.Habilitation(w.credNS, name+"-"+strings.ToLower(string(api)), name, api, tok)
	h.Spec.BaseURL = w.emuURL
	h.Spec.Delivery = jetonv1alpha1.DeliveryGateway
	if api == jetonv1alpha1.DemarchesNumeriques {
		h.Spec.ExpiresAt = &metav1.Time{Time: time.Now().AddDate(1, 0, 0)}
	}
	for _, m := range mutate {
		m(h)
	}
	for _, o := range []client.Object{pc, src, h} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	c.hab = h
	c.credential = w.waitCredential(c, "")
	return c
}

// waitCredential waits until the Habilitation is Ready with its Secret injected holding a
// gateway credential other than old, and returns it.
func (w *world) waitCredential(c *tenant, old string) string {
	t := w.t
	t.Helper()
	var cred string
	testenv.WaitFor(t, time.Minute, "Habilitation "+c.hab.Name+" Ready with a gateway credential injected", func(ctx context.Context) error {
		h := &jetonv1alpha1.Habilitation{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(c.hab), h); err != nil {
			return err
		}
		if r := meta.FindStatusCondition(h.Status.Conditions, jetonv1alpha1.ConditionReady); r == nil || r.Status != metav1.ConditionTrue || r.ObservedGeneration != h.Generation {
			return fmt.Errorf("Ready is %+v", r)
		}
		s := &corev1.Secret{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: c.namespace, Name: h.TargetSecretName()}, s); err != nil {
			return err
		}
		cred = string(s.Data["TOKEN"])
		if !strings.HasPrefix(cred, "jgw1.") || cred == old {
			return fmt.Errorf("TOKEN is not a new gateway credential yet")
		}
		if got := string(s.Data["RECIPIENT"]); got != c.siret {
			return fmt.Errorf("RECIPIENT is %q, want the client's SIRET", got)
		}
		if got := string(s.Data["BASE_URL"]); got != w.gws[0].URL() {
			return fmt.Errorf("BASE_URL is %q, want the gateway's URL %s", got, w.gws[0].URL())
		}
		return nil
	})
	w.remember(cred)
	return cred
}

func (w *world) remember(secret string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.secrets = append(w.secrets, secret)
}

// call sends one request through gateway replica i as a client application does.
func (w *world) call(i int, method, pathAndQuery, credential string, body io.Reader, headers ...string) (*http.Response, []byte) {
	w.t.Helper()
	req, err := http.NewRequestWithContext(w.t.Context(), method, w.gws[i].URL()+pathAndQuery, body)
	if err != nil {
		w.t.Fatal(err)
	}
	if credential != "" {
		req.Header.Set("Authorization", "Bearer "+credential)
	}
	for j := 0; j+1 < len(headers); j += 2 {
		req.Header.Add(headers[j], headers[j+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatalf("%s through the gateway: %v", method, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// aePath is an API Entreprise data call about the client's own establishment.
func aePath(c *tenant, query string) string {
	p := "/v3/insee/sirene/etablissements/" + c.siret + "?context=test&object=gateway"
	if query != "" {
		p += "&" + query
	}
	return p
}

// queryValue matches a recipient or any SIRET-looking query value in a log line.
var queryValue = regexp.MustCompile(`[?&](recipient|context|object)=`)

// scanLogs fails the test if any process's output holds a token, a gateway credential, a
// SIRET sent as a query value, or a query string.
func (w *world) scanLogs() {
	t := w.t
	outs := map[string]string{"manager": w.mgr.Out.String()}
	for i, g := range w.gws {
		outs[fmt.Sprintf("gateway-%d", i)] = g.Out.String()
	}
	w.mu.Lock()
	secrets := append([]string(nil), w.secrets...)
	w.mu.Unlock()
	// Events too: the manager's, about every object of the test.
	var events corev1.EventList
	if err := env.Client.List(context.Background(), &events); err != nil {
		t.Errorf("listing events: %v", err)
	}
	var all strings.Builder
	for _, e := range events.Items {
		all.WriteString(e.Message + "\n")
	}
	outs["events"] = all.String()
	// The scan below reads real access logs: every test calls through gateway-0.
	if !strings.Contains(outs["gateway-0"], `"msg":"request"`) {
		t.Errorf("gateway-0 logged no access line: the scan would prove nothing")
	}
	for name, out := range outs {
		if testenv.ContainsToken(out, secrets) {
			t.Errorf("the %s's output holds a token or a gateway credential", name)
		}
		for _, s := range secrets {
			if strings.HasPrefix(s, "jgw1.") && strings.Contains(out, s[len(s)-16:]) {
				t.Errorf("the %s's output holds part of a gateway credential", name)
			}
		}
		if queryValue.MatchString(out) {
			t.Errorf("the %s's output holds a query string", name)
		}
		if strings.Contains(out, "unites_legales") || strings.Contains(out, "\"data\"") {
			t.Errorf("the %s's output holds an API answer's body", name)
		}
	}
}

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}
