package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/gateway"
	"github.com/jeton-dev/jeton/internal/publicapi"
	"github.com/jeton-dev/jeton/internal/token"
)

// gatewayDelivery sets spec.delivery: Gateway.
func gatewayDelivery(h *jetonv1alpha1.Habilitation) { h.Spec.Delivery = jetonv1alpha1.DeliveryGateway }

// gatewayKey reads the gateway credential key from the API server, waiting for the
// manager to have created it.
func gatewayKey(t *testing.T) []byte {
	t.Helper()
	var key []byte
	waitFor(t, habTimeout, "the gateway credential key", func(ctx context.Context) error {
		s, err := getSecret(ctx, credNS, gateway.CredentialKeySecretName)
		if err != nil {
			return err
		}
		key = s.Data[gateway.CredentialKeyDataKey]
		return nil
	})
	return key
}

// waitCredential waits until Secret namespace/name holds a gateway credential that
// gateway.VerifyCredential accepts for h (its UID, its current rotation annotation) under
// the current key, with the gateway's BASE_URL and the client's SIRET, and returns it.
func waitCredential(t *testing.T, h *jetonv1alpha1.Habilitation, pc *jetonv1alpha1.PublicClient, name string) (string, *corev1.Secret) {
	t.Helper()
	var cred string
	s := &corev1.Secret{}
	waitFor(t, habTimeout, "a valid gateway credential in Secret "+name, func(ctx context.Context) error {
		cur := &jetonv1alpha1.Habilitation{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(h), cur); err != nil {
			return err
		}
		ks, err := getSecret(ctx, credNS, gateway.CredentialKeySecretName)
		if err != nil {
			return err
		}
		key := ks.Data[gateway.CredentialKeyDataKey]
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: pc.TargetNamespace(), Name: name}, s); err != nil {
			return err
		}
		cred = string(s.Data["TOKEN"])
		if !gateway.VerifyCredential(key, cred, string(cur.UID), cur.Annotations[jetonv1alpha1.AnnotationGatewayCredentialRotation]) {
			return fmt.Errorf("TOKEN is not a valid gateway credential of the Habilitation (fingerprint %s)", token.Fingerprint(cred))
		}
		if got := string(s.Data["BASE_URL"]); got != testGatewayURL {
			return fmt.Errorf("BASE_URL %q, want the gateway's %q", got, testGatewayURL)
		}
		if got := string(s.Data["RECIPIENT"]); got != pc.Spec.SIRET {
			return fmt.Errorf("RECIPIENT %q, want the SIRET %q", got, pc.Spec.SIRET)
		}
		return nil
	})
	return cred, s
}

// assertTokenNowhereIn fails if tok (or a JWT's payload or signature) appears in any
// Secret, ConfigMap or workload of namespace.
func assertTokenNowhereIn(t *testing.T, namespace, tok string) {
	t.Helper()
	needles := [][]byte{[]byte(tok)}
	if parts := strings.Split(tok, "."); len(parts) == 3 {
		needles = append(needles, []byte(parts[1]), []byte(parts[2]))
	}
	var secrets corev1.SecretList
	var cms corev1.ConfigMapList
	for _, l := range []client.ObjectList{&secrets, &cms} {
		if err := k8sClient.List(context.Background(), l, client.InNamespace(namespace)); err != nil {
			t.Fatal(err)
		}
	}
	check := func(where string, b []byte) {
		for _, n := range needles {
			if bytes.Contains(b, n) {
				t.Errorf("the API token (fingerprint %s) is in %s", token.Fingerprint(tok), where)
			}
		}
	}
	for _, s := range secrets.Items {
		for k, v := range s.Data {
			check("Secret "+s.Name+" key "+k, v)
		}
		for k, v := range s.Annotations {
			check("Secret "+s.Name+" annotation "+k, []byte(v))
		}
	}
	for _, c := range cms.Items {
		for k, v := range c.Data {
			check("ConfigMap "+c.Name+" key "+k, []byte(v))
		}
	}
}

// assertNoCredentialLeak fails if a gateway credential appears in the manager's logs, in
// an Event of the cluster or in a jeton object: outside the injected Secret, it is as
// good as the token for whoever can reach the gateway.
func assertNoCredentialLeak(t *testing.T, creds ...string) {
	t.Helper()
	ctx := context.Background()
	haystacks := map[string]string{"manager logs": logs.String()}
	var evs eventsv1.EventList
	if err := k8sClient.List(ctx, &evs); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Items {
		haystacks["event "+e.Namespace+"/"+e.Name] = e.Note
	}
	var habs jetonv1alpha1.HabilitationList
	if err := k8sClient.List(ctx, &habs); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(habs)
	if err != nil {
		t.Fatal(err)
	}
	haystacks["Habilitations"] = string(b)
	for _, c := range creds {
		// The HMAC is the secret part; the UID is public.
		proof := c[strings.LastIndex(c, ".")+1:]
		for where, text := range haystacks {
			if strings.Contains(text, proof) {
				t.Errorf("a gateway credential (fingerprint %s) appears in %s", token.Fingerprint(c), where)
			}
		}
	}
}

// generationOf reads a workload's generation: it grows by one per restart jeton patches.
func generationOf(t *testing.T, obj client.Object) int64 { return getObj(t, obj).GetGeneration() }

// usingSecret is a Deployment reading Secret name through envFrom.
func usingSecret(ns, name string) client.Object {
	return deployment(ns, "uses-"+name, corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app",
		EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}}}}}})
}

// Gateway delivery: the client namespace gets a credential the gateway accepts for this
// Habilitation, the gateway's URL and the SIRET; never the API token. Status keeps the
// token's fingerprint and records the delivery and what was delivered.
func TestGatewayDeliveryInjectsACredential(t *testing.T) {
	t.Parallel()
	pc := habClient(t, "gw-inject")
	tok := validToken(t)
	src := tokenSecret(t, credNS, tokenData(tok))
	h := habFor(t, credNS, pc.Name, src.Name, gatewayDelivery)
	got := waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	cred, s := waitCredential(t, h, pc, h.Name)

	if got.Status.Delivery != jetonv1alpha1.DeliveryGateway {
		t.Errorf("status.delivery %q, want Gateway", got.Status.Delivery)
	}
	if got.Status.TokenFingerprint != token.Fingerprint(tok) {
		t.Errorf("status.tokenFingerprint %s, want the real token's %s", got.Status.TokenFingerprint, token.Fingerprint(tok))
	}
	if fp := got.Status.DeliveredFingerprint; fp == "" || fp == got.Status.TokenFingerprint || strings.Contains(cred, fp) {
		t.Errorf("status.deliveredFingerprint %q: want the credential's fingerprint, neither the token's nor a part of the credential", fp)
	}
	if a := s.Annotations[jetonv1alpha1.AnnotationTokenFingerprint]; a != got.Status.DeliveredFingerprint {
		t.Errorf("the Secret's fingerprint annotation %q, want the delivered fingerprint %q", a, got.Status.DeliveredFingerprint)
	}
	if msg := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady).Message; !strings.Contains(msg, "served by the gateway") {
		t.Errorf("Ready message %q does not say the gateway serves the token", msg)
	}
	// Useless for another Habilitation, and not the token.
	other := habFor(t, credNS, pc.Name, tokenSecret(t, credNS, tokenData(validToken(t))).Name, gatewayDelivery)
	otherGot := waitHab(t, other, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	if gateway.VerifyCredential(gatewayKey(t), cred, string(otherGot.UID), "") {
		t.Error("the credential of one Habilitation verifies for another")
	}
	assertTokenNowhereIn(t, pc.TargetNamespace(), tok)
	assertNoTokenLeak(t)
	assertNoCredentialLeak(t, cred)
}

// A new API token in Gateway delivery changes nothing in the client namespace: no Secret
// write, no restart; status records the new token.
func TestGatewayTokenRotationRestartsNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pc := habClient(t, "gw-tokrot")
	tok1 := validToken(t)
	src := tokenSecret(t, credNS, tokenData(tok1))
	h := habFor(t, credNS, pc.Name, src.Name, gatewayDelivery)
	w := usingSecret(pc.TargetNamespace(), h.Name)
	if err := k8sClient.Create(ctx, w); err != nil {
		t.Fatal(err)
	}
	waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	cred, s := waitCredential(t, h, pc, h.Name)
	rv, gen := s.ResourceVersion, generationOf(t, w)
	annotation := podTemplate(getObj(t, w)).Annotations[jetonv1alpha1.AnnotationRestartedFor]

	tok2 := validToken(t)
	src.Data = tokenData(tok2)
	if err := k8sClient.Update(ctx, src); err != nil {
		t.Fatal(err)
	}
	// status is written once a pass is over, after any Secret write or restart it made.
	waitFor(t, habTimeout, "status records the new token", func(ctx context.Context) error {
		got := waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
		if got.Status.TokenFingerprint != token.Fingerprint(tok2) {
			return fmt.Errorf("status.tokenFingerprint %s", got.Status.TokenFingerprint)
		}
		return nil
	})
	note := waitHabEvent(t, h, corev1.EventTypeNormal, "Rotated")
	if !strings.Contains(note, "the gateway sends it") {
		t.Errorf("Rotated event %q does not say the gateway sends the new token", note)
	}
	after, err := getSecret(ctx, pc.TargetNamespace(), h.Name)
	if err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != rv || string(after.Data["TOKEN"]) != cred {
		t.Error("the injected Secret was written for a token rotation in Gateway delivery")
	}
	if g := generationOf(t, w); g != gen {
		t.Errorf("the Deployment restarted (generation %d -> %d) for a token rotation in Gateway delivery", gen, g)
	}
	if a := podTemplate(getObj(t, w)).Annotations[jetonv1alpha1.AnnotationRestartedFor]; a != annotation {
		t.Errorf("pod template annotation %q -> %q", annotation, a)
	}
	if h2 := getHab(t, h); h2.Status.LastRotationTime != nil {
		t.Errorf("lastRotationTime set (%v): nothing was written into the client namespace", h2.Status.LastRotationTime)
	}
	assertTokenNowhereIn(t, pc.TargetNamespace(), tok1)
	assertTokenNowhereIn(t, pc.TargetNamespace(), tok2)
}

// `kubectl jeton rotate-gateway-credential` (the annotation): a new credential is
// delivered, the old one no longer verifies, and the workloads restart once.
func TestGatewayCredentialRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pc := habClient(t, "gw-credrot")
	src := tokenSecret(t, credNS, tokenData(validToken(t)))
	h := habFor(t, credNS, pc.Name, src.Name, gatewayDelivery)
	w := usingSecret(pc.TargetNamespace(), h.Name)
	if err := k8sClient.Create(ctx, w); err != nil {
		t.Fatal(err)
	}
	first := waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	old, _ := waitCredential(t, h, pc, h.Name)
	gen := generationOf(t, w)

	const rotation = "2026-12-07T06:00:00.123456789Z"
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, jetonv1alpha1.AnnotationGatewayCredentialRotation, rotation)
	if err := k8sClient.Patch(ctx, first.DeepCopy(), client.RawPatch("application/merge-patch+json", patch)); err != nil {
		t.Fatal(err)
	}
	var got *jetonv1alpha1.Habilitation
	waitFor(t, habTimeout, "status records the new credential", func(ctx context.Context) error {
		got = waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
		if got.Status.DeliveredFingerprint == first.Status.DeliveredFingerprint || got.Status.LastRotationTime == nil {
			return fmt.Errorf("deliveredFingerprint %s (was %s), lastRotationTime %v", got.Status.DeliveredFingerprint, first.Status.DeliveredFingerprint, got.Status.LastRotationTime)
		}
		return nil
	})
	cred, _ := waitCredential(t, h, pc, h.Name)
	key := gatewayKey(t)
	if cred == old {
		t.Fatal("the credential did not change")
	}
	if gateway.VerifyCredential(key, old, string(h.UID), rotation) {
		t.Error("the old credential still verifies after the rotation")
	}
	if got.Status.TokenFingerprint != first.Status.TokenFingerprint {
		t.Error("the token fingerprint changed: the API token must not be touched")
	}
	want := h.Name + "=" + got.Status.DeliveredFingerprint
	if a := podTemplate(getObj(t, w)).Annotations[jetonv1alpha1.AnnotationRestartedFor]; a != want {
		t.Errorf("pod template annotation %q, want %q", a, want)
	}
	if g := generationOf(t, w); g != gen+1 {
		t.Errorf("the Deployment's generation went %d -> %d: want one restart", gen, g)
	}
	waitHabEvent(t, h, corev1.EventTypeNormal, "Restarted")
	note := waitHabEvent(t, h, corev1.EventTypeNormal, "Rotated")
	if strings.Contains(note, cred) || strings.Contains(note, old) {
		t.Error("an event carries a gateway credential")
	}
	assertNoCredentialLeak(t, cred, old)
}

// Direct -> Gateway -> Direct: each switch rewrites the Secret (token and API URL, or
// credential and gateway URL) and restarts the workloads once.
func TestGatewayDeliverySwitch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pc := habClient(t, "gw-switch")
	tok := validToken(t)
	src := tokenSecret(t, credNS, tokenData(tok))
	h := habFor(t, credNS, pc.Name, src.Name, nil)
	w := usingSecret(pc.TargetNamespace(), h.Name)
	if err := k8sClient.Create(ctx, w); err != nil {
		t.Fatal(err)
	}
	direct := waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	s := waitTarget(t, pc.TargetNamespace(), h.Name, tok)
	apiURL := publicapi.BaseURL(jetonv1alpha1.APIEntreprise, "", "")
	if direct.Status.Delivery != jetonv1alpha1.DeliveryDirect || direct.Status.DeliveredFingerprint != token.Fingerprint(tok) || string(s.Data["BASE_URL"]) != apiURL {
		t.Fatalf("Direct: status.delivery %q, deliveredFingerprint %s, BASE_URL %q", direct.Status.Delivery, direct.Status.DeliveredFingerprint, s.Data["BASE_URL"])
	}
	gen := generationOf(t, w)

	setDelivery := func(d jetonv1alpha1.Delivery) {
		t.Helper()
		patch := fmt.Appendf(nil, `{"spec":{"delivery":%q}}`, d)
		if err := k8sClient.Patch(ctx, getHab(t, h), client.RawPatch("application/merge-patch+json", patch)); err != nil {
			t.Fatal(err)
		}
	}
	waitDelivered := func(d jetonv1alpha1.Delivery, fp func(*jetonv1alpha1.Habilitation) bool) *jetonv1alpha1.Habilitation {
		t.Helper()
		var got *jetonv1alpha1.Habilitation
		waitFor(t, habTimeout, "status.delivery "+string(d), func(ctx context.Context) error {
			got = waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
			if got.Status.Delivery != d || !fp(got) {
				return fmt.Errorf("status.delivery %q, deliveredFingerprint %s", got.Status.Delivery, got.Status.DeliveredFingerprint)
			}
			return nil
		})
		return got
	}

	setDelivery(jetonv1alpha1.DeliveryGateway)
	gw := waitDelivered(jetonv1alpha1.DeliveryGateway, func(h *jetonv1alpha1.Habilitation) bool {
		return h.Status.DeliveredFingerprint != token.Fingerprint(tok)
	})
	waitCredential(t, h, pc, h.Name)
	assertTokenNowhereIn(t, pc.TargetNamespace(), tok)
	if g := generationOf(t, w); g != gen+1 {
		t.Errorf("Direct -> Gateway: generation %d -> %d, want one restart", gen, g)
	}
	if a := podTemplate(getObj(t, w)).Annotations[jetonv1alpha1.AnnotationRestartedFor]; a != h.Name+"="+gw.Status.DeliveredFingerprint {
		t.Errorf("Direct -> Gateway: pod template annotation %q", a)
	}

	setDelivery(jetonv1alpha1.DeliveryDirect)
	waitDelivered(jetonv1alpha1.DeliveryDirect, func(h *jetonv1alpha1.Habilitation) bool {
		return h.Status.DeliveredFingerprint == token.Fingerprint(tok)
	})
	s = waitTarget(t, pc.TargetNamespace(), h.Name, tok)
	if string(s.Data["BASE_URL"]) != apiURL {
		t.Errorf("Gateway -> Direct: BASE_URL %q, want %q", s.Data["BASE_URL"], apiURL)
	}
	if g := generationOf(t, w); g != gen+2 {
		t.Errorf("Gateway -> Direct: generation %d -> %d, want one more restart", gen+1, g)
	}
	if a := podTemplate(getObj(t, w)).Annotations[jetonv1alpha1.AnnotationRestartedFor]; a != h.Name+"="+token.Fingerprint(tok) {
		t.Errorf("Gateway -> Direct: pod template annotation %q", a)
	}
}

// The gateway credential key is nobody's token, like the owner-proof key.
func TestGatewayKeyIsNoToken(t *testing.T) {
	t.Parallel()
	pc := habClient(t, "gwkeyreader")
	// The key exists once a Habilitation is delivered through the gateway.
	gwHab := habFor(t, credNS, pc.Name, tokenSecret(t, credNS, tokenData(validToken(t))).Name, gatewayDelivery)
	waitHab(t, gwHab, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	gatewayKey(t)

	h := habFor(t, credNS, pc.Name, gateway.CredentialKeySecretName, func(h *jetonv1alpha1.Habilitation) {
		h.Spec.TokenSecretRef.Key = gateway.CredentialKeyDataKey
		h.Spec.Target.SecretName = "reads-the-key"
	})
	got := waitHab(t, h, metav1.ConditionFalse, jetonv1alpha1.ReasonInvalidToken)
	if msg := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady).Message; !strings.Contains(msg, "gateway credential key, not a token") || strings.Contains(msg, "byte") {
		t.Errorf("message %q", msg)
	}
	tt := newTT(t, credNS, jetonv1alpha1.APIEntreprise, "http://"+unreachableAPIHost, gateway.CredentialKeySecretName, func(tt *jetonv1alpha1.TechnicalToken) {
		tt.Spec.TokenSecretRef.Key = gateway.CredentialKeyDataKey
	})
	waitTT(t, tt, "InvalidToken", ready(metav1.ConditionFalse, jetonv1alpha1.ReasonInvalidToken))
	if _, err := getSecret(context.Background(), pc.TargetNamespace(), "reads-the-key"); err == nil {
		t.Error("a Secret was injected from the gateway credential key")
	}
}

// A replaced key (a leaked one) takes effect without a restart of the manager: every
// Habilitation in Gateway delivery gets a credential under the new key, and the old one
// no longer verifies. Not parallel: every gateway credential of the cluster changes.
func TestGatewayKeyReplaced(t *testing.T) {
	ctx := context.Background()
	pc := habClient(t, "gw-newkey")
	h := habFor(t, credNS, pc.Name, tokenSecret(t, credNS, tokenData(validToken(t))).Name, gatewayDelivery)
	waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	old, _ := waitCredential(t, h, pc, h.Name)

	s, err := getSecret(ctx, credNS, gateway.CredentialKeySecretName)
	if err != nil {
		t.Fatal(err)
	}
	oldKey := s.Data[gateway.CredentialKeyDataKey]
	newKey := bytes.Repeat([]byte{0x5a}, 32)
	s.Data[gateway.CredentialKeyDataKey] = newKey
	if err := k8sClient.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	// Put a random key back afterwards: the other tests' credentials are minted under it.
	t.Cleanup(func() {
		if s, err := getSecret(ctx, credNS, gateway.CredentialKeySecretName); err == nil {
			s.Data[gateway.CredentialKeyDataKey] = oldKey
			_ = k8sClient.Update(ctx, s)
		}
	})
	cred, _ := waitCredential(t, h, pc, h.Name) // verifies under the new key
	if cred == old || gateway.VerifyCredential(newKey, old, string(h.UID), "") {
		t.Error("the credential minted under the replaced key still verifies")
	}
}

// The second manager runs with --default-delivery=Gateway and no --gateway-url
// (gateway_suite_test.go): a Habilitation without spec.delivery is delivered through the
// gateway by default, so it is GatewayNotConfigured, and nothing is written or removed; an
// explicit spec.delivery: Direct wins over the default.
func TestGatewayDefaultDeliveryWithoutURL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pc := habClient(t, "gw-default")
	ns := pc.TargetNamespace()

	byDefault := habFor(t, gwDefaultNS, pc.Name, tokenSecret(t, gwDefaultNS, tokenData(validToken(t))).Name, nil)
	got := waitHab(t, byDefault, metav1.ConditionFalse, jetonv1alpha1.ReasonGatewayNotConfigured)
	if c := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Stalled condition %v, want True", c)
	}
	if msg := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady).Message; !strings.Contains(msg, "--default-delivery") || !strings.Contains(msg, "--gateway-url") {
		t.Errorf("message %q does not name the default and the missing flag", msg)
	}
	waitHabEvent(t, byDefault, corev1.EventTypeWarning, jetonv1alpha1.ReasonGatewayNotConfigured)
	if got.Status.Delivery != "" || got.Status.TargetSecret != nil {
		t.Errorf("status.delivery %q, targetSecret %v: nothing is delivered", got.Status.Delivery, got.Status.TargetSecret)
	}
	explicit := habFor(t, gwDefaultNS, pc.Name, tokenSecret(t, gwDefaultNS, tokenData(validToken(t))).Name, gatewayDelivery)
	got = waitHab(t, explicit, metav1.ConditionFalse, jetonv1alpha1.ReasonGatewayNotConfigured)
	if msg := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady).Message; !strings.Contains(msg, "(spec.delivery)") {
		t.Errorf("message %q does not name spec.delivery", msg)
	}
	assertNoInjectedSecrets(t, ns)

	// spec.delivery: Direct wins over the default.
	tok := validToken(t)
	direct := habFor(t, gwDefaultNS, pc.Name, tokenSecret(t, gwDefaultNS, tokenData(tok)).Name, func(h *jetonv1alpha1.Habilitation) {
		h.Spec.Delivery = jetonv1alpha1.DeliveryDirect
	})
	waitHab(t, direct, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	before := waitTarget(t, ns, direct.Name, tok)

	// Back to the default (Gateway, without a gateway): the Secret stays as it was.
	if err := k8sClient.Patch(ctx, getHab(t, direct), client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"delivery":null}}`))); err != nil {
		t.Fatal(err)
	}
	got = waitHab(t, direct, metav1.ConditionFalse, jetonv1alpha1.ReasonGatewayNotConfigured)
	after, err := getSecret(ctx, ns, direct.Name)
	if err != nil {
		t.Fatalf("the injected Secret was removed: %v", err)
	}
	if after.ResourceVersion != before.ResourceVersion {
		t.Error("the injected Secret was written while the gateway is not configured")
	}
	if got.Status.Delivery != jetonv1alpha1.DeliveryDirect || got.Status.DeliveredFingerprint != token.Fingerprint(tok) {
		t.Errorf("status.delivery %q, deliveredFingerprint %s: want what is still delivered (Direct, the token's)", got.Status.Delivery, got.Status.DeliveredFingerprint)
	}
}
