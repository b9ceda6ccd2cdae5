package controllers

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/isolation"
	"github.com/jeton-dev/jeton/internal/token"
)

// countingListener accepts connections on loopback (not an allowed API host) and counts them.
func countingListener(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = l.Close() })
	return "http://" + l.Addr().String(), &n
}

// A TechnicalToken naming a client's token Secret sends that token nowhere: not to a host
// outside the allowed ones, and not even to an allowed one (a client's token is never a
// technical token). The client's Habilitation keeps working.
func TestTechnicalTokenNeverSendsAClientToken(t *testing.T) {
	t.Parallel()
	em, emURL := ttEmulator(t)
	tok, id := ttMint(t, em, jetonv1alpha1.APIEntreprise, emulator.Healthy, emulator.MintOptions{Scopes: []string{"attestations_fiscales"}})
	pc := habClient(t, "victim")
	src := tokenSecret(t, credNS, tokenData(tok))
	h := habFor(t, credNS, pc.Name, src.Name, nil)
	waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	// Created in the Habilitation's second, a TechnicalToken would tie with it (both
	// refused): create the attacks in a later second.
	waitNextSecond(t, getHab(t, h))

	attackerURL, connections := countingListener(t)
	for _, tc := range []struct{ name, baseURL, reason string }{
		{"unlisted loopback host", attackerURL, jetonv1alpha1.ReasonAPIHostNotAllowed},
		{"foreign host", "https://attacker.example", jetonv1alpha1.ReasonAPIHostNotAllowed},
		{"official host look-alike", "https://entreprise.api.gouv.fr.attacker.example", jetonv1alpha1.ReasonAPIHostNotAllowed},
		{"allowed host, but a client's token", emURL, jetonv1alpha1.ReasonTokenConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tt := newTT(t, credNS, jetonv1alpha1.APIEntreprise, tc.baseURL, src.Name, threshold(1))
			got := waitTT(t, tt, tc.reason, ready(metav1.ConditionFalse, tc.reason))
			if !meta.IsStatusConditionTrue(got.Status.Conditions, jetonv1alpha1.ConditionStalled) {
				t.Errorf("want Stalled=True: a human must act")
			}
			msg := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady).Message
			if tc.reason == jetonv1alpha1.ReasonTokenConflict && !strings.Contains(msg, h.Name) {
				t.Errorf("message %q does not name the Habilitation holding the token", msg)
			}
			waitTTEvent(t, tt, corev1.EventTypeWarning, tc.reason)
			if got.Status.LastProbeTime != nil || got.Status.LastResult != nil {
				t.Errorf("a probe ran: %+v", got.Status.LastResult)
			}
		})
	}
	if n := connections.Load(); n != 0 {
		t.Errorf("%d connection(s) reached the attacker's listener", n)
	}
	if reqs := em.Requests(id); len(reqs) != 0 {
		t.Errorf("%d request(s) carried the client's token to the API", len(reqs))
	}
	waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	waitTarget(t, pc.TargetNamespace(), h.Name, tok)
}

// The BASE_URL jeton injects is a host tokens may go to: a Habilitation pointing its
// client's workloads at another host is refused, and nothing is injected.
func TestHabilitationRefusesForeignBaseURL(t *testing.T) {
	t.Parallel()
	pc := habClient(t, "baseurl")
	tok := validToken(t)
	h := habFor(t, credNS, pc.Name, tokenSecret(t, credNS, tokenData(tok)).Name, func(h *jetonv1alpha1.Habilitation) {
		h.Spec.BaseURL = "http://entreprise.api.gouv.fr" // official host, but plain HTTP
	})
	got := waitHab(t, h, metav1.ConditionFalse, jetonv1alpha1.ReasonAPIHostNotAllowed)
	msg := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady).Message
	if !strings.Contains(msg, "--allowed-api-hosts") || !strings.Contains(msg, "plain HTTP") {
		t.Errorf("message %q does not say why and what to do", msg)
	}
	waitHabEvent(t, h, corev1.EventTypeWarning, jetonv1alpha1.ReasonAPIHostNotAllowed)
	assertNoInjectedSecrets(t, pc.TargetNamespace())
}

// dnSpelling spells one Démarches Numériques token: base64 of "<uuid>;<secret>".
func dnSpelling(id, secret string, enc *base64.Encoding) string {
	return rememberToken(enc.EncodeToString([]byte(id + ";" + secret)))
}

// Every spelling of one token is one token: a second client cannot take it by re-encoding it.
func TestOneTokenWhateverItsSpelling(t *testing.T) {
	t.Parallel()
	id := fmt.Sprintf("%s-%s-4%s-8%s-%s", rand.String(8), rand.String(4), rand.String(3), rand.String(3), rand.String(12))
	id = strings.Map(func(r rune) rune { // rand.String is [b-z2-9]: make it hex
		if r >= 'g' && r <= 'z' {
			return 'a' + (r-'g')%6
		}
		return r
	}, id)
	secret := "s" + rand.String(29) + "?" // makes the two alphabets differ
	owner := habClient(t, "owner")
	first := habFor(t, credNS, owner.Name, tokenSecret(t, credNS, tokenData(dnSpelling(id, secret, base64.RawURLEncoding))).Name,
		func(h *jetonv1alpha1.Habilitation) {
			h.Spec.API = jetonv1alpha1.DemarchesNumeriques
			named("a-first")(h)
		})
	waitHab(t, first, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	waitNextSecond(t, getHab(t, first))

	other := habClient(t, "other")
	for _, spelling := range []string{
		dnSpelling(id, secret, base64.URLEncoding),
		dnSpelling(id, secret, base64.StdEncoding),
		dnSpelling(strings.ToUpper(id), secret, base64.RawURLEncoding),
	} {
		h := habFor(t, credNS, other.Name, tokenSecret(t, credNS, tokenData(spelling)).Name,
			func(h *jetonv1alpha1.Habilitation) {
				h.Spec.API = jetonv1alpha1.DemarchesNumeriques
				named("z-other")(h)
			})
		got := waitHab(t, h, metav1.ConditionFalse, jetonv1alpha1.ReasonTokenConflict)
		if !strings.Contains(meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady).Message, first.Name) {
			t.Errorf("conflict does not name the Habilitation that owns the token")
		}
	}
	assertNoInjectedSecrets(t, other.TargetNamespace())
	waitHab(t, first, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
}

// A tenant editing the fingerprint annotation of its injected Secret fakes no rotation:
// the annotation is restored, no Rotated event, no restart.
func TestForgedFingerprintIsDriftNotRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pc := habClient(t, "forger")
	ns := pc.TargetNamespace()
	tok := validToken(t)
	h := habFor(t, credNS, pc.Name, tokenSecret(t, credNS, tokenData(tok)).Name, nil)
	app := deployment(ns, "app", corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app",
		EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: h.Name}}}}}}})
	if err := k8sClient.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	s := waitTarget(t, ns, h.Name, tok)
	fp := s.Annotations[jetonv1alpha1.AnnotationTokenFingerprint]

	s.Annotations[jetonv1alpha1.AnnotationTokenFingerprint] = "0123456789abcdef"
	if err := k8sClient.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	waitFor(t, habTimeout, "forged fingerprint annotation restored", func(ctx context.Context) error {
		got, err := getSecret(ctx, ns, h.Name)
		if err != nil {
			return err
		}
		if a := got.Annotations[jetonv1alpha1.AnnotationTokenFingerprint]; a != fp {
			return fmt.Errorf("annotation %q", a)
		}
		return nil
	})
	waitHabEvent(t, h, corev1.EventTypeNormal, eventRestored)
	got := waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	if got.Status.LastRotationTime != nil {
		t.Errorf("lastRotationTime set by a forged annotation")
	}
	if g := getObj(t, app).GetGeneration(); g != 1 {
		t.Errorf("workload restarted by a forged annotation (generation %d)", g)
	}
	var events eventsv1.EventList
	if err := k8sClient.List(ctx, &events, client.InNamespace(credNS)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if e.Regarding.Name == h.Name && (e.Reason == eventRotated || e.Reason == eventRestarted) {
			t.Errorf("event %s recorded for a forged annotation", e.Reason)
		}
	}
}

// A status recorded before canonical fingerprints (the SHA-256 of the token as written)
// moves to the canonical fingerprint without any restart: it is the same token.
func TestLegacyFingerprintMovesWithoutRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pc := habClient(t, "upgrade")
	ns := pc.TargetNamespace()
	id := "0b6c3f5e-9d2a-4e1b-8f7c-" + fmt.Sprintf("%012x", rand.Int())[:12]
	tok := dnSpelling(id, "secret-"+rand.String(20), base64.URLEncoding) // padded: its two fingerprints differ
	if token.Fingerprint(tok) == token.LegacyFingerprint(tok) {
		t.Fatal("the test token must have a legacy fingerprint different from its canonical one")
	}
	h := habFor(t, credNS, pc.Name, tokenSecret(t, credNS, tokenData(tok)).Name, func(h *jetonv1alpha1.Habilitation) {
		h.Spec.API = jetonv1alpha1.DemarchesNumeriques
	})
	app := deployment(ns, "app", corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app",
		EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: h.Name}}}}}}})
	if err := k8sClient.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	got := waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)

	// What a jeton before canonical fingerprints recorded.
	patch := client.MergeFrom(got.DeepCopy())
	got.Status.TokenFingerprint = token.LegacyFingerprint(tok)
	if err := k8sClient.Status().Patch(ctx, got, patch); err != nil {
		t.Fatal(err)
	}
	waitFor(t, habTimeout, "status back on the canonical fingerprint", func(ctx context.Context) error {
		cur := &jetonv1alpha1.Habilitation{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(h), cur); err != nil {
			return err
		}
		if cur.Status.TokenFingerprint != token.Fingerprint(tok) {
			return fmt.Errorf("status fingerprint %s", cur.Status.TokenFingerprint)
		}
		return nil
	})
	if g := getObj(t, app).GetGeneration(); g != 1 {
		t.Errorf("workload restarted by the move to canonical fingerprints (generation %d)", g)
	}
	cur := &jetonv1alpha1.Habilitation{}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(h), cur); err != nil || cur.Status.LastRotationTime != nil {
		t.Errorf("lastRotationTime set by the move to canonical fingerprints (err %v)", err)
	}
}

// A TechnicalToken and a Habilitation may share a namespace and a name: the TechnicalToken's
// events still reach the Habilitation (deleting the TechnicalToken frees the token).
func TestTechnicalTokenOfTheSameNameAsAHabilitation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pc := habClient(t, "samename")
	tok := validToken(t)
	tt := newTT(t, credNS, jetonv1alpha1.APIEntreprise, "http://"+unreachableAPIHost, tokenSecret(t, credNS, tokenData(tok)).Name,
		func(tt *jetonv1alpha1.TechnicalToken) { tt.Spec.Suspend = true })
	waitNextSecond(t, tt)
	h := habFor(t, credNS, pc.Name, tokenSecret(t, credNS, tokenData(tok)).Name, func(h *jetonv1alpha1.Habilitation) { h.Name = tt.Name })
	waitHab(t, h, metav1.ConditionFalse, jetonv1alpha1.ReasonTechnicalTokenReuse)
	assertNoInjectedSecrets(t, pc.TargetNamespace())

	if err := k8sClient.Delete(ctx, tt); err != nil {
		t.Fatal(err)
	}
	waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	waitTarget(t, pc.TargetNamespace(), h.Name, tok)
}

// The exploit sequence against a live client whose namespace was deleted: a look-alike
// created under its name with the label and owner proof copied from the old namespace is
// refused by the first pass, and by every pass after it (status keeps the lost
// namespace's UID, so the copied creation proof is never honoured).
func TestLookalikeOfALostNamespaceIsNeverAdopted(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	pc := &jetonv1alpha1.PublicClient{ObjectMeta: metav1.ObjectMeta{Name: "victim", UID: "client-uid"}}
	pc.Status.Namespace, pc.Status.NamespaceUID, pc.Status.NamespaceOrigin = "victim", "old-ns-uid", jetonv1alpha1.NamespaceCreated
	lookalike := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "victim", UID: "attacker-ns-uid",
		Labels:      map[string]string{jetonv1alpha1.LabelClient: "victim"},
		Annotations: map[string]string{jetonv1alpha1.AnnotationOwnerProof: isolation.CreatedProof(key, "victim", "victim", "client-uid", "")}}}
	for pass := 1; pass <= 3; pass++ {
		d := isolation.Decide(pc, lookalike, nil, key)
		if d.Verdict != isolation.OwnedElsewhere {
			t.Fatalf("pass %d: verdict %v (origin %q), want OwnedElsewhere", pass, d.Verdict, d.Origin)
		}
		forgetNamespace(&pc.Status) // what the reconciler does on OwnedElsewhere
	}
}

// A token Secret labelled jeton.dev/client=<client> by the credentials admin belongs to that
// client: an editor cannot bind it to another client, not even by naming it first (before
// the Secret or the rightful Habilitation exists), nor probe it as a technical token.
func TestSecretLabelledForAClientServesOnlyThatClient(t *testing.T) {
	t.Parallel()
	owner := habClient(t, "rightful")
	squatter := habClient(t, "squatter")
	tok := validToken(t)
	early, src := squatThenDeliver(t, owner.Name, squatter.Name, tok)
	name := src.Name
	// The event of the refusal names the client; the condition then keeps a fixed message.
	if note := waitHabEvent(t, early, corev1.EventTypeWarning, jetonv1alpha1.ReasonSecretClientMismatch); !strings.Contains(note, owner.Name) {
		t.Errorf("event %q does not name the client the Secret is for", note)
	}
	assertNoInjectedSecrets(t, squatter.TargetNamespace())

	// The rightful Habilitation, newer than the squatter's, gets the token.
	h := habFor(t, credNS, owner.Name, name, nil)
	waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	waitTarget(t, owner.TargetNamespace(), h.Name, tok)

	// Nor is it a technical token.
	em, emURL := ttEmulator(t)
	_ = em
	tt := newTT(t, credNS, jetonv1alpha1.APIEntreprise, emURL, name, threshold(1))
	ttGot := waitTT(t, tt, "SecretClientMismatch", ready(metav1.ConditionFalse, jetonv1alpha1.ReasonSecretClientMismatch))
	if ttGot.Status.LastProbeTime != nil || ttGot.Status.TokenFingerprint != "" {
		t.Errorf("the TechnicalToken probed or fingerprinted a client's token")
	}
	waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
}

// labelledAndCopy creates a Secret labelled for client owner holding tok, and an unlabelled
// Secret holding the same token (a legacy copy kept while moving to labels, say).
func labelledAndCopy(t *testing.T, owner, tok string) (labelled, copied *corev1.Secret) {
	t.Helper()
	return labelledSecret(t, uniqueName("labelled"), owner, tok), tokenSecret(t, credNS, tokenData(tok))
}

// labelledSecret creates Secret name of the credentials namespace holding tok, labelled
// for client owner, as a credentials admin delivers it.
func labelledSecret(t *testing.T, name, owner, tok string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: name,
		Labels: map[string]string{jetonv1alpha1.LabelClient: owner}}, Data: tokenData(tok)}
	if err := k8sClient.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), s) })
	return s
}

// squatThenDeliver plays an editor naming a token Secret for client squatter before it is
// delivered, then the credentials admin delivering it with owner's token, labelled for
// owner; it returns once the squatter's Habilitation is refused for the label.
func squatThenDeliver(t *testing.T, owner, squatter, tok string) (*jetonv1alpha1.Habilitation, *corev1.Secret) {
	t.Helper()
	name := uniqueName("token")
	early := habFor(t, credNS, squatter, name, nil)
	waitHab(t, early, metav1.ConditionFalse, jetonv1alpha1.ReasonSecretNotFound)
	waitNextSecond(t, getHab(t, early))
	src := labelledSecret(t, name, owner, tok)
	waitHab(t, early, metav1.ConditionFalse, jetonv1alpha1.ReasonSecretClientMismatch)
	return early, src
}

// The label belongs to the token, not to one Secret: an unlabelled copy of a labelled
// token serves no other client and is never probed, even when named first.
func TestLabelledTokenThroughAnUnlabelledCopy(t *testing.T) {
	t.Parallel()
	owner := habClient(t, "labowner")
	squatter := habClient(t, "labsquat")
	em, emURL := ttEmulator(t)
	tok, id := ttMint(t, em, jetonv1alpha1.APIEntreprise, emulator.Healthy, emulator.MintOptions{})
	labelled, copied := labelledAndCopy(t, owner.Name, tok)

	squat := habFor(t, credNS, squatter.Name, copied.Name, nil)
	tt := newTT(t, credNS, jetonv1alpha1.APIEntreprise, emURL, copied.Name, threshold(1))
	waitHab(t, squat, metav1.ConditionFalse, jetonv1alpha1.ReasonSecretClientMismatch)
	waitTT(t, tt, "SecretClientMismatch", ready(metav1.ConditionFalse, jetonv1alpha1.ReasonSecretClientMismatch))
	waitNextSecond(t, getHab(t, squat))
	waitNextSecond(t, tt)

	rightful := habFor(t, credNS, owner.Name, labelled.Name, nil)
	waitHab(t, rightful, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	waitTarget(t, owner.TargetNamespace(), rightful.Name, tok)
	assertNoInjectedSecrets(t, squatter.TargetNamespace())
	if reqs := em.Requests(id); len(reqs) != 0 {
		t.Errorf("%d probe request(s) carried a client's labelled token", len(reqs))
	}
}

// A refusal for a label is kept: a Habilitation placed early on a Secret does not take the
// token when a GitOps sync later drops the label.
func TestLabelRefusalOutlivesTheLabel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner := habClient(t, "keptowner")
	squatter := habClient(t, "keptsquat")
	tok := validToken(t)
	early, src := squatThenDeliver(t, owner.Name, squatter.Name, tok)
	name := src.Name
	h := habFor(t, credNS, owner.Name, name, nil)
	waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)

	// A GitOps sync drops the label; the source Secret's change reaches both Habilitations.
	cur := &corev1.Secret{}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(src), cur); err != nil {
		t.Fatal(err)
	}
	delete(cur.Labels, jetonv1alpha1.LabelClient)
	cur.Data = tokenData(tok + "\n") // same token, new resourceVersion and data: both are reconciled
	if err := k8sClient.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	waitFor(t, habTimeout, "the early Habilitation's refusal kept after the label went", func(ctx context.Context) error {
		got := &jetonv1alpha1.Habilitation{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(early), got); err != nil {
			return err
		}
		if r := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady); r == nil || r.Reason != jetonv1alpha1.ReasonSecretClientMismatch || !strings.Contains(r.Message, "stands whatever the label says") {
			return fmt.Errorf("Ready %+v", r)
		}
		return nil
	})
	assertNoInjectedSecrets(t, squatter.TargetNamespace())
	waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	waitTarget(t, owner.TargetNamespace(), h.Name, tok)
}

// jeton's owner-proof key is nobody's token: no resource reads it, not even to say why it
// is not a token.
func TestOwnerKeyIsNoToken(t *testing.T) {
	t.Parallel()
	pc := habClient(t, "keyreader")
	ownerProofKey(t) // the key exists
	h := habFor(t, credNS, pc.Name, ownerKeySecretName, func(h *jetonv1alpha1.Habilitation) { h.Spec.TokenSecretRef.Key = ownerKeyDataKey })
	got := waitHab(t, h, metav1.ConditionFalse, jetonv1alpha1.ReasonInvalidToken)
	if msg := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady).Message; !strings.Contains(msg, "owner-proof key") || strings.Contains(msg, "byte") {
		t.Errorf("message %q", msg)
	}
	tt := newTT(t, credNS, jetonv1alpha1.APIEntreprise, "http://"+unreachableAPIHost, ownerKeySecretName, func(tt *jetonv1alpha1.TechnicalToken) {
		tt.Spec.TokenSecretRef.Key = ownerKeyDataKey
	})
	waitTT(t, tt, "InvalidToken", ready(metav1.ConditionFalse, jetonv1alpha1.ReasonInvalidToken))
	assertNoInjectedSecrets(t, pc.TargetNamespace())
}
