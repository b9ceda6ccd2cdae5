package metrics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

const (
	credNS = "jeton-system"
	// A token and its fingerprint as they would sit in a Secret and in status: neither may
	// ever appear in the exposition.
	secretToken = "eyJhbGciOiJIUzI1NiJ9.eyJqdGkiOiJzZWNyZXQtanRpIn0.c2lnbmF0dXJlLXNlY3JldA"
	fingerprint = "9f86d081884c7d65"
	tokenID     = "0f4e2c1a-7b7e-4d7a-9e1f-3c2b1a0d9e8f"
)

// stateMetrics are the collector's metric names (CollectAndFormat keeps only the names it is given).
var stateMetrics = []string{TokenExpirationName, ResourceReadyName, ProbeSuccessName}

var expiry = time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)

func testScheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := jetonv1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func ready(status metav1.ConditionStatus, reason string) []metav1.Condition {
	return []metav1.Condition{{Type: jetonv1alpha1.ConditionReady, Status: status, Reason: reason, Message: "m"}}
}

func tokenStatus() jetonv1alpha1.TokenStatus {
	exp := metav1.NewTime(expiry)
	return jetonv1alpha1.TokenStatus{TokenFingerprint: fingerprint, TokenID: tokenID, ExpiresAt: &exp, Scopes: []string{"unites_legales"}}
}

func habilitation(name, client string, conds []metav1.Condition, withToken bool) *jetonv1alpha1.Habilitation {
	h := &jetonv1alpha1.Habilitation{
		ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: name},
		Spec: jetonv1alpha1.HabilitationSpec{
			ClientRef:      jetonv1alpha1.ClientReference{Name: client},
			API:            jetonv1alpha1.APIEntreprise,
			TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: name + "-token", Key: "token"},
		},
		Status: jetonv1alpha1.HabilitationStatus{Conditions: conds},
	}
	if withToken {
		h.Status.TokenStatus = tokenStatus()
	}
	return h
}

func technicalToken(name string, conds []metav1.Condition, result *jetonv1alpha1.ProbeResult) *jetonv1alpha1.TechnicalToken {
	return &jetonv1alpha1.TechnicalToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: name},
		Spec: jetonv1alpha1.TechnicalTokenSpec{
			API:            jetonv1alpha1.APIParticulier,
			Environment:    jetonv1alpha1.EnvironmentStaging,
			TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: name + "-token", Key: "token"},
		},
		Status: jetonv1alpha1.TechnicalTokenStatus{TokenStatus: tokenStatus(), Conditions: conds, LastResult: result},
	}
}

// header renders the HELP and TYPE lines of a metric family for the expected exposition.
func header(name, help, typ string) string {
	return fmt.Sprintf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func TestCollectorExposesStateGauges(t *testing.T) {
	suspended := technicalToken("tt-suspended", ready(metav1.ConditionFalse, jetonv1alpha1.ReasonSuspended),
		&jetonv1alpha1.ProbeResult{Reason: jetonv1alpha1.ReasonUnauthorized, HTTPStatus: 401})
	suspended.Spec.Suspend = true
	unprobed := technicalToken("tt-new", nil, nil)
	unprobed.Status.ExpiresAt = nil

	objs := []client.Object{
		habilitation("acme-ok", "acme", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonInjected), true),
		habilitation("acme-conflict", "acme", ready(metav1.ConditionFalse, jetonv1alpha1.ReasonTokenConflict), true),
		// Not reconciled yet: no condition, no expiry.
		habilitation("beta-new", "beta", nil, false),
		technicalToken("tt-ok", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded),
			&jetonv1alpha1.ProbeResult{Reason: jetonv1alpha1.ReasonProbeSucceeded, HTTPStatus: 200}),
		technicalToken("tt-failing", ready(metav1.ConditionFalse, jetonv1alpha1.ReasonProbeFailing),
			&jetonv1alpha1.ProbeResult{Reason: jetonv1alpha1.ReasonRateLimited, HTTPStatus: 429}),
		suspended,
		unprobed,
		&jetonv1alpha1.PublicClient{
			ObjectMeta: metav1.ObjectMeta{Name: "acme"},
			Spec:       jetonv1alpha1.PublicClientSpec{DisplayName: "Acme", SIRET: "73282932000074", Namespace: "acme-apps"},
			Status:     jetonv1alpha1.PublicClientStatus{Namespace: "acme-apps", Conditions: ready(metav1.ConditionTrue, jetonv1alpha1.ReasonReady)},
		},
		// No status yet: namespace falls back to the spec's default (the resource name).
		&jetonv1alpha1.PublicClient{
			ObjectMeta: metav1.ObjectMeta{Name: "beta"},
			Spec:       jetonv1alpha1.PublicClientSpec{DisplayName: "Beta", SIRET: "73282932000074"},
		},
	}
	c := NewCollector(fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(objs...).Build())

	exp := expiry.Unix()
	want := header(TokenExpirationName, tokenExpirationHelp, "gauge") + fmt.Sprintf(`
jeton_token_expiration_timestamp_seconds{api="APIEntreprise",client="acme",environment="production",kind="Habilitation",name="acme-conflict",namespace="jeton-system"} %[1]d
jeton_token_expiration_timestamp_seconds{api="APIEntreprise",client="acme",environment="production",kind="Habilitation",name="acme-ok",namespace="jeton-system"} %[1]d
jeton_token_expiration_timestamp_seconds{api="APIParticulier",client="",environment="staging",kind="TechnicalToken",name="tt-failing",namespace="jeton-system"} %[1]d
jeton_token_expiration_timestamp_seconds{api="APIParticulier",client="",environment="staging",kind="TechnicalToken",name="tt-ok",namespace="jeton-system"} %[1]d
jeton_token_expiration_timestamp_seconds{api="APIParticulier",client="",environment="staging",kind="TechnicalToken",name="tt-suspended",namespace="jeton-system"} %[1]d
`, exp) + header(ResourceReadyName, resourceReadyHelp, "gauge") + `
jeton_resource_ready{api="",client="acme",environment="",kind="PublicClient",name="acme",namespace="acme-apps",reason="Ready"} 1
jeton_resource_ready{api="",client="beta",environment="",kind="PublicClient",name="beta",namespace="beta",reason="Unknown"} 0
jeton_resource_ready{api="APIEntreprise",client="acme",environment="production",kind="Habilitation",name="acme-conflict",namespace="jeton-system",reason="TokenConflict"} 0
jeton_resource_ready{api="APIEntreprise",client="acme",environment="production",kind="Habilitation",name="acme-ok",namespace="jeton-system",reason="Injected"} 1
jeton_resource_ready{api="APIEntreprise",client="beta",environment="production",kind="Habilitation",name="beta-new",namespace="jeton-system",reason="Unknown"} 0
jeton_resource_ready{api="APIParticulier",client="",environment="staging",kind="TechnicalToken",name="tt-failing",namespace="jeton-system",reason="ProbeFailing"} 0
jeton_resource_ready{api="APIParticulier",client="",environment="staging",kind="TechnicalToken",name="tt-new",namespace="jeton-system",reason="Unknown"} 0
jeton_resource_ready{api="APIParticulier",client="",environment="staging",kind="TechnicalToken",name="tt-ok",namespace="jeton-system",reason="ProbeSucceeded"} 1
jeton_resource_ready{api="APIParticulier",client="",environment="staging",kind="TechnicalToken",name="tt-suspended",namespace="jeton-system",reason="Suspended"} 0
` + header(ProbeSuccessName, probeSuccessHelp, "gauge") + `
jeton_probe_success{api="APIParticulier",environment="staging",name="tt-failing",namespace="jeton-system"} 0
jeton_probe_success{api="APIParticulier",environment="staging",name="tt-ok",namespace="jeton-system"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	// The registry's own consistency checks (label names per Desc, duplicates) pass too.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("pedantic registry rejects the collector: %v", err)
	}
}

func TestCollectorDeletedObjectsLeaveNoSeries(t *testing.T) {
	cl := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(
		habilitation("gone", "acme", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonInjected), true),
		habilitation("stays", "acme", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonInjected), true),
		technicalToken("tt-gone", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded),
			&jetonv1alpha1.ProbeResult{Reason: jetonv1alpha1.ReasonProbeSucceeded}),
	).Build()
	c := NewCollector(cl)
	// 2 Habilitations + 1 TechnicalToken, each with an expiry and a readiness, + 1 probe result.
	if n := testutil.CollectAndCount(c); n != 7 {
		t.Fatalf("before deletion: got %d series, want 7", n)
	}

	ctx := context.Background()
	if err := cl.Delete(ctx, habilitation("gone", "", nil, false)); err != nil {
		t.Fatal(err)
	}
	if err := cl.Delete(ctx, technicalToken("tt-gone", nil, nil)); err != nil {
		t.Fatal(err)
	}

	text, err := testutil.CollectAndFormat(c, expfmt.TypeTextPlain, stateMetrics...)
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{`name="gone"`, `name="tt-gone"`} {
		if strings.Contains(string(text), gone) {
			t.Errorf("deleted object %s still has series:\n%s", gone, text)
		}
	}
	if !strings.Contains(string(text), `name="stays"`) {
		t.Errorf("remaining Habilitation lost its series:\n%s", text)
	}
}

// TestExpositionNeverHoldsTokenOrFingerprint scrapes everything jeton registers, after
// every kind of metric was produced from objects that know a token, and looks for any
// piece of the token, its fingerprint or its id.
func TestExpositionNeverHoldsTokenOrFingerprint(t *testing.T) {
	resetEventMetrics(t)
	source := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: "acme-token"},
		Data:       map[string][]byte{"token": []byte(secretToken)},
	}
	failing := technicalToken("tt", ready(metav1.ConditionFalse, jetonv1alpha1.ReasonUnauthorized),
		&jetonv1alpha1.ProbeResult{Reason: jetonv1alpha1.ReasonUnauthorized, HTTPStatus: 401, Code: "00101", Message: "token " + fingerprint + " refused"})
	cl := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(
		source, failing,
		habilitation("acme", "acme", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonInjected), true),
	).Build()
	reg := prometheus.NewPedanticRegistry()
	if err := Register(reg, cl); err != nil {
		t.Fatal(err)
	}
	ObserveProbe(credNS, "tt", "APIParticulier", "staging", jetonv1alpha1.ReasonUnauthorized, 120*time.Millisecond)
	WorkloadRestarted(credNS, "acme", "acme", "APIEntreprise", "production", 2)

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	enc := expfmt.NewEncoder(&text, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range families {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	exposition := text.String()
	if !strings.Contains(exposition, ProbeTotalName) || !strings.Contains(exposition, WorkloadRestartName) {
		t.Fatalf("exposition lacks the event metrics, the check below would prove nothing:\n%s", exposition)
	}
	needles := []string{fingerprint, tokenID}
	// Every 8-character window of the token: no fragment may leak either.
	for i := 0; i+8 <= len(secretToken); i++ {
		needles = append(needles, secretToken[i:i+8])
	}
	for _, n := range needles {
		if strings.Contains(exposition, n) {
			t.Fatalf("metrics exposition contains secret material %q", n)
		}
	}
}

func TestCollectorSkipsKindThatCannotBeListed(t *testing.T) {
	resetEventMetrics(t)
	cl := fake.NewClientBuilder().WithScheme(testScheme(t)).
		WithObjects(technicalToken("tt", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded), nil)).
		WithInterceptorFuncs(interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if _, ok := list.(*jetonv1alpha1.HabilitationList); ok {
				return errors.New("cache not synced")
			}
			return c.List(ctx, list, opts...)
		}}).Build()

	text, err := testutil.CollectAndFormat(NewCollector(cl), expfmt.TypeTextPlain, stateMetrics...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(text), `kind="TechnicalToken",name="tt"`) {
		t.Errorf("other kinds must still be exposed when one list fails:\n%s", text)
	}
	if got := testutil.ToFloat64(collectErrors.WithLabelValues(KindHabilitation)); got != 1 {
		t.Errorf("%s{kind=Habilitation} = %v, want 1", CollectErrorsName, got)
	}
}

func TestCollectIsBoundedByTimeout(t *testing.T) {
	resetEventMetrics(t)
	// A reader that never answers until its context ends, like a cache that never syncs.
	cl := fake.NewClientBuilder().WithScheme(testScheme(t)).
		WithInterceptorFuncs(interceptor.Funcs{List: func(ctx context.Context, _ client.WithWatch, _ client.ObjectList, _ ...client.ListOption) error {
			<-ctx.Done()
			return ctx.Err()
		}}).Build()
	c := NewCollector(cl)
	c.timeout = 20 * time.Millisecond

	done := make(chan int)
	go func() { done <- testutil.CollectAndCount(c) }()
	select {
	case n := <-done:
		if n != 0 {
			t.Errorf("got %d series from a reader that never answers, want 0", n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Collect did not return: its reads are not bounded by a timeout")
	}
	if got := testutil.CollectAndCount(collectErrors); got != 3 {
		t.Errorf("want one collect error series per kind, got %d", got)
	}
}

// benchObjects are 1000 Habilitations and 1000 TechnicalTokens, all Ready and probed.
func benchObjects() ([]jetonv1alpha1.Habilitation, []jetonv1alpha1.TechnicalToken) {
	habs := make([]jetonv1alpha1.Habilitation, 1000)
	tts := make([]jetonv1alpha1.TechnicalToken, 1000)
	for i := range 1000 {
		habs[i] = *habilitation(fmt.Sprintf("hab-%04d", i), fmt.Sprintf("client-%03d", i%300), ready(metav1.ConditionTrue, jetonv1alpha1.ReasonInjected), true)
		tts[i] = *technicalToken(fmt.Sprintf("tt-%04d", i), ready(metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded),
			&jetonv1alpha1.ProbeResult{Reason: jetonv1alpha1.ReasonProbeSucceeded, HTTPStatus: 200})
	}
	return habs, tts
}

func benchGather(b *testing.B, reader client.Reader) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(reader))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		mfs, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		if len(mfs) != 3 || len(mfs[1].Metric) != 2000 {
			b.Fatalf("got %d families", len(mfs))
		}
	}
}

// BenchmarkCollect scrapes 1000 Habilitations + 1000 TechnicalTokens through the fake client,
// which copies every object on List (the manager's cache does not, with UnsafeDisableDeepCopy).
func BenchmarkCollect(b *testing.B) {
	habs, tts := benchObjects()
	objs := make([]client.Object, 0, 2000)
	for i := range habs {
		objs = append(objs, &habs[i], &tts[i])
	}
	benchGather(b, fake.NewClientBuilder().WithScheme(testScheme(b)).WithObjects(objs...).Build())
}

// BenchmarkCollectNoCopy is the same scrape from a reader that hands out its objects without
// copying them, like the manager's cache with UnsafeDisableDeepCopy: the collector's own cost.
func BenchmarkCollectNoCopy(b *testing.B) {
	habs, tts := benchObjects()
	benchGather(b, memReader{habs: habs, tts: tts})
}

type memReader struct {
	client.Reader
	habs []jetonv1alpha1.Habilitation
	tts  []jetonv1alpha1.TechnicalToken
}

func (m memReader) List(_ context.Context, list client.ObjectList, _ ...client.ListOption) error {
	switch l := list.(type) {
	case *jetonv1alpha1.HabilitationList:
		l.Items = m.habs
	case *jetonv1alpha1.TechnicalTokenList:
		l.Items = m.tts
	}
	return nil
}

// TestCollectorExposesProbeSchedule covers the two gauges that tell a prober that stopped:
// the last probe's time, and the interval while jeton schedules probes.
func TestCollectorExposesProbeSchedule(t *testing.T) {
	last := metav1.NewTime(time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC))
	next := metav1.NewTime(last.Add(5 * time.Minute))
	succeeded := &jetonv1alpha1.ProbeResult{Reason: jetonv1alpha1.ReasonProbeSucceeded, HTTPStatus: 200}

	probed := technicalToken("tt-probed", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded), succeeded)
	probed.Status.LastProbeTime, probed.Status.NextProbeTime = &last, &next
	// spec.interval set: published as is.
	fast := technicalToken("tt-fast", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded), succeeded)
	fast.Spec.Interval = &metav1.Duration{Duration: 30 * time.Second}
	fast.Status.LastProbeTime, fast.Status.NextProbeTime = &last, &next
	// Scheduled, never probed: an interval and no last probe.
	pending := technicalToken("tt-pending", ready(metav1.ConditionUnknown, jetonv1alpha1.ReasonProbePending), nil)
	pending.Status.NextProbeTime = &next
	// Stalled after probes (nextProbeTime cleared): the last probe stays, no interval.
	stalled := technicalToken("tt-stalled", ready(metav1.ConditionFalse, jetonv1alpha1.ReasonSecretNotFound), succeeded)
	stalled.Status.LastProbeTime = &last
	// Suspended: nothing about probes.
	suspended := technicalToken("tt-suspended", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded), succeeded)
	suspended.Spec.Suspend = true
	suspended.Status.LastProbeTime, suspended.Status.NextProbeTime = &last, &next

	c := NewCollector(fake.NewClientBuilder().WithScheme(testScheme(t)).
		WithObjects(probed, fast, pending, stalled, suspended).Build())
	want := header(ProbeLastName, probeLastHelp, "gauge") + fmt.Sprintf(`
jeton_probe_last_timestamp_seconds{api="APIParticulier",environment="staging",name="tt-fast",namespace="jeton-system"} %[1]d
jeton_probe_last_timestamp_seconds{api="APIParticulier",environment="staging",name="tt-probed",namespace="jeton-system"} %[1]d
jeton_probe_last_timestamp_seconds{api="APIParticulier",environment="staging",name="tt-stalled",namespace="jeton-system"} %[1]d
`, last.Unix()) + header(ProbeIntervalName, probeIntervalHelp, "gauge") + `
jeton_probe_interval_seconds{api="APIParticulier",environment="staging",name="tt-fast",namespace="jeton-system"} 30
jeton_probe_interval_seconds{api="APIParticulier",environment="staging",name="tt-pending",namespace="jeton-system"} 300
jeton_probe_interval_seconds{api="APIParticulier",environment="staging",name="tt-probed",namespace="jeton-system"} 300
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), ProbeLastName, ProbeIntervalName); err != nil {
		t.Fatal(err)
	}
}

// TestCollectorExposesHostUnreachable: one series per API host that a scheduled
// TechnicalToken probes, 1 only when none of them got an answer at its last probe.
func TestCollectorExposesHostUnreachable(t *testing.T) {
	next := metav1.NewTime(time.Date(2026, 6, 1, 10, 5, 0, 0, time.UTC))
	timedOut := &jetonv1alpha1.ProbeResult{Reason: jetonv1alpha1.ReasonTimeout}
	revoked := &jetonv1alpha1.ProbeResult{Reason: jetonv1alpha1.ReasonRevoked, HTTPStatus: 401}
	tt := func(name, baseURL string, r *jetonv1alpha1.ProbeResult, scheduled bool) *jetonv1alpha1.TechnicalToken {
		tt := technicalToken(name, ready(metav1.ConditionFalse, r.Reason), r)
		tt.Spec.BaseURL = baseURL
		tt.Status.ConsecutiveFailures = 3
		if scheduled {
			tt.Status.NextProbeTime = &next
		}
		return tt
	}
	c := NewCollector(fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(
		tt("a", "https://banned.example", timedOut, true),
		tt("b", "https://BANNED.example/", timedOut, true),
		tt("c", "https://answering.example", timedOut, true),
		tt("d", "https://answering.example", revoked, true),
		tt("e", "https://refused.example", timedOut, false), // not scheduled: says nothing
	).Build())
	want := header(HostUnreachableName, hostUnreachableHelp, "gauge") + `
jeton_api_host_unreachable{host="answering.example"} 0
jeton_api_host_unreachable{host="banned.example"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), HostUnreachableName); err != nil {
		t.Fatal(err)
	}
}
