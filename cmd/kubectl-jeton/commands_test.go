package main

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/testenv"
	"github.com/jeton-dev/jeton/internal/token"
)

var rng = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x6a65746f6e))

// smallFleet is a client with one Habilitation injected and one TechnicalToken.
type smallFleet struct {
	client *jetonv1alpha1.PublicClient
	hab    *jetonv1alpha1.Habilitation
	tt     *jetonv1alpha1.TechnicalToken
	// habToken and ttToken are the tokens; ttID is the technical token's id in em.
	habToken, ttToken, ttID string
}

// fleetIn creates a smallFleet in credentials namespace ns, the TechnicalToken probed
// against em, and waits until the Habilitation is injected.
func fleetIn(t *testing.T, ns string, em *emulator.Server, url string, mutateTT func(*jetonv1alpha1.TechnicalToken)) smallFleet {
	t.Helper()
	var f smallFleet
	var err error
	f.client = &jetonv1alpha1.PublicClient{ObjectMeta: metav1.ObjectMeta{Name: uniqueName("commune")},
		Spec: jetonv1alpha1.PublicClientSpec{DisplayName: "Commune de test", SIRET: testenv.RandomSIRET(rng)}}
	create(t, f.client)
	if f.habToken, _, err = em.Mint(jetonv1alpha1.APIEntreprise, emulator.MintOptions{Scopes: []string{"attestations_fiscales"}}); err != nil {
		t.Fatal(err)
	}
	remember(f.habToken)
	if f.ttToken, f.ttID, err = em.Mint(jetonv1alpha1.APIEntreprise, emulator.MintOptions{Scopes: []string{"attestations_fiscales"}}); err != nil {
		t.Fatal(err)
	}
	remember(f.ttToken)
	habSecret := tokenSecret(t, ns, uniqueName("hab-token"), f.habToken)
	ttSecret := tokenSecret(t, ns, uniqueName("tt-token"), f.ttToken)
	waitReason(t, f.client, jetonv1alpha1.ReasonReady)
	f.hab = &jetonv1alpha1.Habilitation{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: uniqueName("hab")},
		Spec: jetonv1alpha1.HabilitationSpec{ClientRef: jetonv1alpha1.ClientReference{Name: f.client.Name}, API: jetonv1alpha1.APIEntreprise,
			DatapassID: "123", TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: habSecret.Name, Key: "token"}}}
	create(t, f.hab)
	f.tt = &jetonv1alpha1.TechnicalToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: uniqueName("tt")},
		Spec: jetonv1alpha1.TechnicalTokenSpec{API: jetonv1alpha1.APIEntreprise, BaseURL: url,
			TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: ttSecret.Name, Key: "token"},
			Interval:       &metav1.Duration{Duration: time.Hour}, Timeout: &metav1.Duration{Duration: 5 * time.Second}}}
	if mutateTT != nil {
		mutateTT(f.tt)
	}
	create(t, f.tt)
	waitReason(t, f.hab, jetonv1alpha1.ReasonInjected)
	return f
}

// contains checks that the output holds each of wants, runs of spaces counting as one.
func contains(t *testing.T, r result, args string, wants ...string) {
	t.Helper()
	squeeze := func(s string) string {
		return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' }), " ")
	}
	out := squeeze(r.stdout + r.stderr)
	for _, w := range wants {
		if !strings.Contains(out, squeeze(w)) {
			t.Errorf("kubectl jeton %s: output lacks %q\nstdout:\n%s\nstderr:\n%s", args, w, r.stdout, r.stderr)
		}
	}
}

func TestReconcileAndProbe(t *testing.T) {
	em, url := takeEmulator(t)
	f := fleetIn(t, nsCommands, em, url, nil)
	waitReason(t, f.tt, jetonv1alpha1.ReasonProbeSucceeded)

	r := kubectlJeton(t, "", "reconcile", "pcl", f.client.Name)
	wantCode(t, r, exitOK, "reconcile pcl")
	contains(t, r, "reconcile pcl", "PublicClient "+f.client.Name+": request handled", "Ready:          True (Ready)", "Namespace:      "+f.client.Name)

	// Without -n: found in whichever namespace holds it.
	r = kubectlJeton(t, "", "reconcile", "habilitation", f.hab.Name)
	wantCode(t, r, exitOK, "reconcile habilitation")
	contains(t, r, "reconcile hab", "Habilitation "+nsCommands+"/"+f.hab.Name+": request handled", "True (Injected)", "Secret:         "+f.client.Name+"/"+f.hab.Name)

	r = kubectlJeton(t, "", "reconcile", "tt", "-n", nsCommands, f.tt.Name)
	wantCode(t, r, exitOK, "reconcile tt")
	contains(t, r, "reconcile tt", "True (ProbeSucceeded)", "Last probe:     ProbeSucceeded, HTTP 200")

	// Every request is recorded in status, and asks for a probe that really goes out.
	before := len(em.Requests(f.ttID))
	if err := em.SetBehaviour(f.ttID, emulator.Revoked); err != nil {
		t.Fatal(err)
	}
	r = kubectlJeton(t, "", "probe", f.tt.Name)
	wantCode(t, r, exitNeedsAction, "probe (revoked)")
	contains(t, r, "probe", "Last probe:     Revoked, HTTP 401, code 00105", "Failures:       1 in a row")
	if after := len(em.Requests(f.ttID)); after != before+1 {
		t.Errorf("probe sent %d requests to the API, want 1", after-before)
	}
	got := &jetonv1alpha1.TechnicalToken{}
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(f.tt), got); err != nil {
		t.Fatal(err)
	}
	if a := got.Annotations[jetonv1alpha1.AnnotationRequestedAt]; a == "" || a != got.Status.LastHandledRequestedAt {
		t.Errorf("annotation %q, lastHandledRequestedAt %q: want the same request", a, got.Status.LastHandledRequestedAt)
	}

	r = kubectlJeton(t, "", "reconcile", "hab", f.hab.Name, "--wait=false")
	wantCode(t, r, exitOK, "reconcile --wait=false")
	contains(t, r, "reconcile --wait=false", "requested at")
}

// A probe asked for while the API said to back off waits for the gate: the plugin gives up
// after --timeout and says why, and the API sees nothing meanwhile.
func TestProbeObeysTheGate(t *testing.T) {
	em, url := takeEmulator(t)
	f := fleetIn(t, nsCommands, em, url, func(tt *jetonv1alpha1.TechnicalToken) { tt.Spec.FailureThreshold = 1 })
	waitReason(t, f.tt, jetonv1alpha1.ReasonProbeSucceeded)
	if err := em.SetBehaviour(f.ttID, emulator.RateLimited); err != nil {
		t.Fatal(err)
	}
	if err := em.SetRetryAfter(f.ttID, time.Hour); err != nil {
		t.Fatal(err)
	}
	r := kubectlJeton(t, "", "probe", "-n", nsCommands, f.tt.Name)
	wantCode(t, r, exitNeedsAction, "probe (rate limited)")
	contains(t, r, "probe", "RateLimited, HTTP 429")
	if err := em.SetBehaviour(f.ttID, emulator.Healthy); err != nil {
		t.Fatal(err)
	}
	sent := len(em.Requests(f.ttID))
	r = kubectlJeton(t, "", "probe", "-n", nsCommands, f.tt.Name, "--timeout", "3s")
	wantCode(t, r, exitError, "probe (held by the gate)")
	contains(t, r, "probe", "was not probed within 3s: the probe gate holds it until")
	if n := len(em.Requests(f.ttID)); n != sent {
		t.Errorf("the API got %d requests while it asked to back off", n-sent)
	}
}

func TestStatusNothingToDo(t *testing.T) {
	em, url := takeEmulator(t)
	f := fleetIn(t, nsHealthy, em, url, nil)
	waitReason(t, f.tt, jetonv1alpha1.ReasonProbeSucceeded)
	r := kubectlJeton(t, "", "status", "-n", nsHealthy)
	wantCode(t, r, exitOK, "status")
	contains(t, r, "status", "nothing needs action", "1 PublicClient(s) Ready", "1 Habilitation(s) injected", "1 TechnicalToken(s) probing fine")
	// -A wins over the context's namespace: the whole fleet, with the golden one's troubles
	// once TestGolden has run; either way the healthy namespace's resources are there.
	r = kubectlJeton(t, "", "inventory", "-A")
	wantCode(t, r, exitOK, "inventory -A")
	contains(t, r, "inventory -A", f.hab.Name, f.tt.Name)
}

func TestWhoUsesSecretsNotJetons(t *testing.T) {
	ns := uniqueName("tenant")
	create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}, StringData: map[string]string{"password": "x"}})
	create(t, deploymentOf(ns, "app", restricted(corev1.Container{Name: "app", Env: []corev1.EnvVar{{Name: "DB_PASSWORD",
		ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "password"}}}}})))
	r := kubectlJeton(t, "", "who-uses", "-n", ns, "db")
	wantCode(t, r, exitOK, "who-uses")
	contains(t, r, "who-uses", "Secret "+ns+"/db is not injected by jeton", "Deployment  app", "DB_PASSWORD from key password")

	// A look-alike: jeton's labels on a Secret jeton did not write.
	em, url := takeEmulator(t)
	f := fleetIn(t, nsCommands, em, url, nil)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.client.Name, Name: "look-alike", Labels: map[string]string{
		jetonv1alpha1.LabelManagedBy: jetonv1alpha1.ManagedByValue, jetonv1alpha1.LabelHabilitation: f.hab.Name,
		jetonv1alpha1.LabelHabilitationNamespace: nsCommands, jetonv1alpha1.LabelClient: f.client.Name}}})
	r = kubectlJeton(t, "", "who-uses", "-n", f.client.Name, "look-alike")
	wantCode(t, r, exitOK, "who-uses look-alike")
	contains(t, r, "who-uses look-alike", "WARNING:", "records Secret "+f.client.Name+"/"+f.hab.Name+" as the one it injected, not this one")
}

func TestInspectTokenFromStdin(t *testing.T) {
	em := emulator.New()
	tok, id, err := em.Mint(jetonv1alpha1.APIParticulier, emulator.MintOptions{Scopes: []string{"cnaf_quotient_familial"}})
	if err != nil {
		t.Fatal(err)
	}
	remember(tok)
	r := kubectlJeton(t, tok+"\n", "inspect-token")
	wantCode(t, r, exitOK, "inspect-token")
	contains(t, r, "inspect-token", "Token ID:     "+id, "Scopes:       cnaf_quotient_familial", "Fingerprint:  "+token.Fingerprint(tok))
	r = kubectlJeton(t, "Bearer "+tok, "inspect-token", "--api", "APIParticulier", "-o", "json")
	wantCode(t, r, exitError, "inspect-token (Bearer)")
	contains(t, r, "inspect-token", `starts with "Bearer "`)

	dn, dnID, err := em.Mint(jetonv1alpha1.DemarchesNumeriques, emulator.MintOptions{Scopes: []string{"42"}})
	if err != nil {
		t.Fatal(err)
	}
	remember(dn)
	r = kubectlJeton(t, dn, "inspect-token", "-o", "json")
	wantCode(t, r, exitOK, "inspect-token (DN)")
	contains(t, r, "inspect-token", `"kind": "DemarchesNumeriques"`, `"tokenID": "`+dnID+`"`)
	// A Démarches Numériques token is not a JWT.
	r = kubectlJeton(t, dn, "inspect-token", "--api", "APIEntreprise")
	wantCode(t, r, exitError, "inspect-token --api APIEntreprise (DN token)")
	contains(t, r, "inspect-token", "looks like a Démarches Numériques token")

	password := remember("correct-horse-battery-staple-and-more words")
	r = kubectlJeton(t, password, "inspect-token")
	wantCode(t, r, exitError, "inspect-token (not a token)")
	contains(t, r, "inspect-token", "invalid token")
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"reconcile", "hab", "nope"}, []string{`Habilitation "nope" not found in any namespace`, "kubectl jeton inventory"}},
		{[]string{"reconcile", "pcl", "nope"}, []string{`PublicClient "nope" not found`}},
		{[]string{"probe", "-n", nsCommands, "nope"}, []string{`TechnicalToken "nope" not found in namespace ` + nsCommands}},
		{[]string{"reconcile", "deployment", "x"}, []string{`unknown kind "deployment": use hab (Habilitation), tt (TechnicalToken) or pcl (PublicClient)`}},
		{[]string{"who-uses", "-n", nsCommands, "nope"}, []string{"there is no Secret " + nsCommands + "/nope"}},
		{[]string{"inspect-token", "-n", nsCommands, "nope"}, []string{"there is no Secret " + nsCommands + "/nope"}},
		{[]string{"inventory", "-o", "yaml"}, []string{`unknown output format "yaml": use one of table, csv, json, markdown`}},
		{[]string{"status", "extra"}, []string{`unknown command "extra"`}},
	} {
		args := strings.Join(tc.args, " ")
		r := kubectlJeton(t, "", tc.args...)
		wantCode(t, r, exitError, args)
		contains(t, r, args, tc.wants...)
	}
}

// userKubeconfig writes a kubeconfig for a new user of the test cluster, without any role.
func userKubeconfig(t *testing.T, name string) string {
	t.Helper()
	u, err := env.Environment.AddUser(envtest.User{Name: name}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := u.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The errors name the verb and resource that are missing, and the role that grants them.
func TestNoAccess(t *testing.T) {
	user := uniqueName("auditor")
	kc := userKubeconfig(t, user)
	r := kubectlJetonAs(t, kc, "", "status")
	wantCode(t, r, exitError, "status (no role)")
	contains(t, r, "status", "no access: you may not list habilitations.jeton.dev in all namespaces", `RBAC verb "list" on resource "habilitations" of API group "jeton.dev"`, "jeton-viewer-role")

	// The viewer role of config/rbac, bound cluster-wide: reading works, acting does not.
	viewer := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: uniqueName("jeton-viewer")}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"jeton.dev"}, Resources: []string{"publicclients", "habilitations", "technicaltokens"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"jeton.dev"}, Resources: []string{"publicclients/status", "habilitations/status", "technicaltokens/status"}, Verbs: []string{"get"}},
	}}
	create(t, viewer)
	create(t, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: viewer.Name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: viewer.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}}})
	em, url := takeEmulator(t)
	f := fleetIn(t, nsCommands, em, url, nil)
	testenv.WaitFor(t, time.Minute, "the binding to take effect", func(context.Context) error {
		if r := kubectlJetonAs(t, kc, "", "inventory", "-n", nsCommands); r.code != exitOK {
			return errString(r.stderr)
		}
		return nil
	})
	r = kubectlJetonAs(t, kc, "", "reconcile", "hab", "-n", nsCommands, f.hab.Name)
	wantCode(t, r, exitError, "reconcile (viewer)")
	contains(t, r, "reconcile", "no access: you may not patch habilitations.jeton.dev in namespace "+nsCommands, "jeton-editor-role")
	r = kubectlJetonAs(t, kc, "", "who-uses", "-n", f.client.Name, f.hab.Name)
	wantCode(t, r, exitError, "who-uses (viewer)")
	contains(t, r, "who-uses", "no access: you may not get secrets in namespace "+f.client.Name)
	r = kubectlJetonAs(t, kc, "", "inspect-token", "-n", nsCommands, f.hab.Spec.TokenSecretRef.Name)
	wantCode(t, r, exitError, "inspect-token (viewer)")
	contains(t, r, "inspect-token", "no access: you may not get secrets in namespace "+nsCommands, "Reading a token Secret is for the admins of its namespace")
}

type errString string

func (e errString) Error() string { return string(e) }

// A cluster without jeton's CRDs, then with them but without the operator: a control plane
// of its own, started for this test.
func TestNoCRDsNoOperator(t *testing.T) {
	bare := &envtest.Environment{BinaryAssetsDirectory: env.Environment.BinaryAssetsDirectory}
	if _, err := bare.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bare.Stop() })
	u, err := bare.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := u.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"status"}, {"inventory", "-o", "json"}, {"reconcile", "hab", "x"}, {"probe", "-n", "default", "x"}} {
		r := kubectlJetonAs(t, kc, "", args...)
		wantCode(t, r, exitError, strings.Join(args, " "))
		contains(t, r, strings.Join(args, " "), "the jeton CRDs are not installed in the cluster at", "make install")
	}

	if _, err := envtest.InstallCRDs(bare.Config, envtest.CRDInstallOptions{Paths: []string{filepath.Join(env.Root, "config", "crd", "bases")}}); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(bare.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	pc := &jetonv1alpha1.PublicClient{ObjectMeta: metav1.ObjectMeta{Name: "orphan"},
		Spec: jetonv1alpha1.PublicClientSpec{DisplayName: "Sans opérateur", SIRET: testenv.RandomSIRET(rng)}}
	if err := c.Create(context.Background(), pc); err != nil {
		t.Fatal(err)
	}
	r := kubectlJetonAs(t, kc, "", "reconcile", "pcl", "orphan", "--timeout", "1s")
	wantCode(t, r, exitError, "reconcile (no operator)")
	contains(t, r, "reconcile", "the operator did not handle the request for PublicClient orphan within 1s: is it running")
	r = kubectlJetonAs(t, kc, "", "status")
	wantCode(t, r, exitNeedsAction, "status (no operator)")
	contains(t, r, "status", "NOT RECONCILED (1) - just applied? is the operator running?", "PublicClient orphan no Ready condition yet")
}
