package controllers

import (
	"cmp"
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/token"
	"github.com/jeton-dev/jeton/internal/tokensource"
)

func TestHabilitationInjectsToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pc := habClient(t, "inject")
	tok := validToken(t)
	src := tokenSecret(t, credNS, tokenData("\n  "+tok+"\n")) // pasted with blank lines
	h := habFor(t, credNS, pc.Name, src.Name, nil)

	got := waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	target := waitTarget(t, pc.TargetNamespace(), h.Name, tok)
	waitHabEvent(t, h, corev1.EventTypeNormal, jetonv1alpha1.ReasonInjected)

	fp := token.Fingerprint(tok)
	if target.Type != corev1.SecretTypeOpaque {
		t.Errorf("type %s, want Opaque", target.Type)
	}
	if r := string(target.Data["RECIPIENT"]); r != pc.Spec.SIRET {
		t.Errorf("RECIPIENT = %q, want the client's SIRET %s", r, pc.Spec.SIRET)
	}
	if u := string(target.Data["BASE_URL"]); u != "https://entreprise.api.gouv.fr" {
		t.Errorf("BASE_URL = %q, want the production API Entreprise URL", u)
	}
	wantLabels := map[string]string{
		jetonv1alpha1.LabelManagedBy:             jetonv1alpha1.ManagedByValue,
		jetonv1alpha1.LabelClient:                pc.Name,
		jetonv1alpha1.LabelHabilitation:          h.Name,
		jetonv1alpha1.LabelHabilitationNamespace: credNS,
	}
	for k, v := range wantLabels {
		if target.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, target.Labels[k], v)
		}
	}
	for k := range target.Labels {
		if strings.Contains(k, "argocd") || strings.Contains(k, "fluxcd") {
			t.Errorf("GitOps label %s leaked from the source Secret", k)
		}
	}
	for k := range target.Annotations {
		if strings.Contains(k, "argocd") {
			t.Errorf("GitOps annotation %s leaked from the source Secret", k)
		}
	}
	if target.Annotations[jetonv1alpha1.AnnotationTokenFingerprint] != fp {
		t.Errorf("fingerprint annotation %q, want %s", target.Annotations[jetonv1alpha1.AnnotationTokenFingerprint], fp)
	}
	if len(target.OwnerReferences) != 0 {
		t.Errorf("owner references across namespaces: %v", target.OwnerReferences)
	}
	// One field manager, jeton: the first write is a create (it cannot take over a Secret
	// that exists, and costs no read first), every later one a server-side apply.
	for _, m := range target.ManagedFields {
		if m.Manager != jetonv1alpha1.ManagedByValue {
			t.Errorf("managed fields of %s/%s: manager %q (%s), want only jeton", target.Namespace, target.Name, m.Manager, m.Operation)
		}
	}

	st := got.Status
	if st.TokenFingerprint != fp || st.TokenID == "" || st.ExpiresAt == nil || st.IssuedAt == nil ||
		!slices.Equal(st.Scopes, []string{"unites_legales_etablissements_siege"}) {
		t.Errorf("token status %+v, want fingerprint %s, jti, iat, exp and scopes", st.TokenStatus, fp)
	}
	if st.TargetSecret == nil || *st.TargetSecret != (jetonv1alpha1.SecretReference{Namespace: pc.TargetNamespace(), Name: h.Name}) {
		t.Errorf("status.targetSecret %v, want %s/%s", st.TargetSecret, pc.TargetNamespace(), h.Name)
	}
	if st.LastRotationTime != nil {
		t.Errorf("lastRotationTime %v after a first injection, want none", st.LastRotationTime)
	}
	if !slices.Contains(got.Finalizers, jetonv1alpha1.FinalizerCleanup) {
		t.Errorf("finalizers %v, want %s", got.Finalizers, jetonv1alpha1.FinalizerCleanup)
	}

	// kstatus, as Argo CD, Flux and kubectl wait judge it.
	for _, obj := range []client.Object{got, waitClientCondition(t, pc.Name, metav1.ConditionTrue, jetonv1alpha1.ReasonReady)} {
		if s := kstatusOf(t, obj); s != status.CurrentStatus {
			t.Errorf("kstatus of %T %s = %s, want Current", obj, obj.GetName(), s)
		}
	}

	// Steady state: another pass writes nothing.
	rv := target.ResourceVersion
	touchHab(t, got)
	waitHab(t, got, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	if again := waitTarget(t, pc.TargetNamespace(), h.Name, tok); again.ResourceVersion != rv {
		t.Errorf("injected Secret rewritten (resourceVersion %s -> %s) although nothing changed", rv, again.ResourceVersion)
	}
	_ = ctx
}

// TestHabilitationRefusesBadInput feeds one broken input per case and checks that each gets
// a clear condition and an Event, injects nothing, and disturbs no other client.
func TestHabilitationRefusesBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// A healthy bystander, whose injected Secret must stay untouched.
	bystander := habClient(t, "bystander")
	bTok := validToken(t)
	bHab := habFor(t, credNS, bystander.Name, tokenSecret(t, credNS, tokenData(bTok)).Name, nil)
	waitHab(t, bHab, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	bSecret := waitTarget(t, bystander.TargetNamespace(), bHab.Name, bTok)

	pc := habClient(t, "bad")
	elsewhere := uniqueName("tenant")
	createNamespace(t, elsewhere, nil)
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), namespaceObject(elsewhere)) })

	malformed := rememberToken("eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXBheWxvYWQtbm90LWpzb24.c2lnbmF0dXJlLXNlY3JldA")
	tests := []struct {
		name      string
		namespace string
		client    string
		data      map[string][]byte // nil: no source Secret at all
		key       string
		reason    string
		stalled   bool
		inMessage string
	}{
		{name: "malformed JWT", data: tokenData(malformed), reason: jetonv1alpha1.ReasonInvalidToken, stalled: true, inMessage: "does not hold a valid token"},
		{name: "not a JWT at all", data: tokenData(rememberToken("justsomepassword123")), reason: jetonv1alpha1.ReasonInvalidToken, stalled: true, inMessage: "does not hold a valid token"},
		{name: "non-UTF-8", data: map[string][]byte{"token": {0xff, 0xfe, 0x00, 0x41}}, reason: jetonv1alpha1.ReasonInvalidToken, stalled: true, inMessage: "UTF-8"},
		{name: "oversized", data: tokenData(strings.Repeat("a", 20000)), reason: jetonv1alpha1.ReasonInvalidToken, stalled: true, inMessage: "bytes"},
		{name: "empty", data: tokenData(""), reason: jetonv1alpha1.ReasonInvalidToken, stalled: true, inMessage: "empty"},
		{name: "missing Secret", reason: jetonv1alpha1.ReasonSecretNotFound, inMessage: "not found"},
		{name: "missing key", data: map[string][]byte{"jwt": []byte(validToken(t))}, reason: jetonv1alpha1.ReasonSecretKeyNotFound, stalled: true, inMessage: `has no key "token" (keys: jwt)`},
		{name: "unknown client", client: "no-such-client", data: tokenData(validToken(t)), reason: jetonv1alpha1.ReasonClientNotFound, inMessage: "no-such-client"},
		{name: "outside the credentials namespaces", namespace: elsewhere, data: tokenData(validToken(t)), reason: jetonv1alpha1.ReasonNamespaceNotAllowed, stalled: true, inMessage: credNS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := cmp.Or(tt.namespace, credNS)
			secretName := uniqueName("absent")
			if tt.data != nil {
				secretName = tokenSecret(t, ns, tt.data).Name
			}
			h := habFor(t, ns, cmp.Or(tt.client, pc.Name), secretName, nil)
			got := waitHab(t, h, metav1.ConditionFalse, tt.reason)
			ready := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady)
			if !strings.Contains(ready.Message, tt.inMessage) {
				t.Errorf("message %q does not say %q", ready.Message, tt.inMessage)
			}
			if isStalled := meta.IsStatusConditionTrue(got.Status.Conditions, jetonv1alpha1.ConditionStalled); isStalled != tt.stalled {
				t.Errorf("Stalled=%v, want %v", isStalled, tt.stalled)
			}
			waitHabEvent(t, h, corev1.EventTypeWarning, tt.reason)
			if got.Status.TargetSecret != nil {
				t.Errorf("status.targetSecret = %v, want none", got.Status.TargetSecret)
			}
			if _, err := getSecret(ctx, pc.TargetNamespace(), h.Name); !apierrors.IsNotFound(err) {
				t.Errorf("target Secret present (err %v), want nothing injected", err)
			}
			if tt.namespace != "" && slices.Contains(got.Finalizers, jetonv1alpha1.FinalizerCleanup) {
				t.Errorf("finalizer on a Habilitation jeton does not honour")
			}
		})
	}

	assertNoInjectedSecrets(t, pc.TargetNamespace())
	if s, err := getSecret(ctx, bSecret.Namespace, bSecret.Name); err != nil || s.ResourceVersion != bSecret.ResourceVersion {
		t.Errorf("bystander's Secret changed (err %v)", err)
	}
	assertNoTokenLeak(t)
}

// TestHabilitationRemovesSecretWhenSourceBreaks: a token that becomes invalid is removed
// from the client namespace (fail closed) and comes back when fixed.
func TestHabilitationRemovesSecretWhenSourceBreaks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pc := habClient(t, "breaks")
	tok := validToken(t)
	src := tokenSecret(t, credNS, tokenData(tok))
	h := habFor(t, credNS, pc.Name, src.Name, nil)
	waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	waitTarget(t, pc.TargetNamespace(), h.Name, tok)

	src.Data = tokenData("not a token")
	if err := k8sClient.Update(ctx, src); err != nil {
		t.Fatal(err)
	}
	got := waitHab(t, h, metav1.ConditionFalse, jetonv1alpha1.ReasonInvalidToken)
	waitGone(t, pc.TargetNamespace(), h.Name)
	waitHabEvent(t, h, corev1.EventTypeNormal, "Removed")
	if msg := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady).Message; !strings.Contains(msg, "fail closed") {
		t.Errorf("message %q does not say that nothing is injected", msg)
	}

	src.Data = tokenData(tok)
	if err := k8sClient.Update(ctx, src); err != nil {
		t.Fatal(err)
	}
	waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	waitTarget(t, pc.TargetNamespace(), h.Name, tok)
}

func TestHabilitationTokenConflict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	x := habClient(t, "owner")
	y := habClient(t, "thief")
	tok := validToken(t)

	older := habFor(t, credNS, x.Name, tokenSecret(t, credNS, tokenData(tok)).Name, named("a-older"))
	waitHab(t, older, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	ownerSecret := waitTarget(t, x.TargetNamespace(), older.Name, tok)

	waitNextSecond(t, getHab(t, older))
	newer := habFor(t, credNS, y.Name, tokenSecret(t, credNS, tokenData(tok)).Name, named("z-newer"))
	got := waitHab(t, newer, metav1.ConditionFalse, jetonv1alpha1.ReasonTokenConflict)
	if !meta.IsStatusConditionTrue(got.Status.Conditions, jetonv1alpha1.ConditionStalled) {
		t.Error("a token conflict needs a human: want Stalled=True")
	}
	msg := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady).Message
	if !strings.Contains(msg, older.Name) || !strings.Contains(msg, x.Name) {
		t.Errorf("message %q does not name the older Habilitation and its client", msg)
	}
	if s := kstatusOf(t, got); s != status.FailedStatus {
		t.Errorf("kstatus %s, want Failed", s)
	}
	waitHabEvent(t, newer, corev1.EventTypeWarning, jetonv1alpha1.ReasonTokenConflict)
	// The owner hears of it too: its token was handed to another client.
	if note := waitHabEvent(t, older, corev1.EventTypeWarning, jetonv1alpha1.ReasonTokenConflict); !strings.Contains(note, newer.Name) {
		t.Errorf("event on the older Habilitation %q does not name the refused one", note)
	}
	assertNoInjectedSecrets(t, y.TargetNamespace())
	// The older binding keeps working, untouched.
	waitHab(t, older, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	if s, err := getSecret(ctx, ownerSecret.Namespace, ownerSecret.Name); err != nil || s.ResourceVersion != ownerSecret.ResourceVersion {
		t.Errorf("the owner's Secret changed (err %v)", err)
	}

	// When the older binding goes away, the token is free: the newer one gets it.
	if err := k8sClient.Delete(ctx, older); err != nil {
		t.Fatal(err)
	}
	waitHab(t, newer, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	waitTarget(t, y.TargetNamespace(), newer.Name, tok)
	waitGone(t, x.TargetNamespace(), older.Name)
}

// TestHabilitationTokenConflictRace creates two Habilitations of two clients with the same
// token at once: whatever the order of reconciles, only the older one ends up injected.
func TestHabilitationTokenConflictRace(t *testing.T) {
	t.Parallel()
	x := habClient(t, "racex")
	y := habClient(t, "racey")
	tok := validToken(t)
	sx := tokenSecret(t, credNS, tokenData(tok))
	sy := tokenSecret(t, credNS, tokenData(tok))
	hx := habFor(t, credNS, x.Name, sx.Name, nil)
	hy := habFor(t, credNS, y.Name, sy.Name, nil)

	hx = getHab(t, hx)
	hy = getHab(t, hy)
	if hx.CreationTimestamp.Equal(&hy.CreationTimestamp) {
		// Created in one second: no order, so neither client gets the token.
		waitHab(t, hx, metav1.ConditionFalse, jetonv1alpha1.ReasonTokenConflict)
		waitHab(t, hy, metav1.ConditionFalse, jetonv1alpha1.ReasonTokenConflict)
		assertNoInjectedSecrets(t, x.TargetNamespace())
		assertNoInjectedSecrets(t, y.TargetNamespace())
		return
	}
	first, second := hx, hy
	firstClient, secondClient := x, y
	if hy.CreationTimestamp.Before(&hx.CreationTimestamp) {
		first, second = hy, hx
		firstClient, secondClient = y, x
	}
	waitHab(t, first, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	waitHab(t, second, metav1.ConditionFalse, jetonv1alpha1.ReasonTokenConflict)
	waitTarget(t, firstClient.TargetNamespace(), first.Name, tok)
	waitGone(t, secondClient.TargetNamespace(), second.Name)
}

// TestHabilitationSameClientMayShareToken: two Habilitations of one client holding the same
// token leak nothing to another client, so both are injected (a documented decision).
func TestHabilitationSameClientMayShareToken(t *testing.T) {
	t.Parallel()
	pc := habClient(t, "twice")
	tok := validToken(t)
	h1 := habFor(t, credNS, pc.Name, tokenSecret(t, credNS, tokenData(tok)).Name, nil)
	h2 := habFor(t, credNS, pc.Name, tokenSecret(t, credNS, tokenData(tok)).Name, nil)
	waitHab(t, h1, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	waitHab(t, h2, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	waitTarget(t, pc.TargetNamespace(), h1.Name, tok)
	waitTarget(t, pc.TargetNamespace(), h2.Name, tok)
}

func TestHabilitationRefusesTechnicalToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pc := habClient(t, "ttreuse")
	tok := validToken(t)
	ttSecret := tokenSecret(t, credNS, tokenData(tok))
	tt := &jetonv1alpha1.TechnicalToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: uniqueName("tt")},
		Spec: jetonv1alpha1.TechnicalTokenSpec{
			API:            jetonv1alpha1.APIEntreprise,
			BaseURL:        "http://127.0.0.1:1",
			Interval:       &metav1.Duration{Duration: 5 * time.Minute},
			Timeout:        &metav1.Duration{Duration: 10 * time.Second},
			TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: ttSecret.Name, Key: "token"},
			Suspend:        true, // never probe: this test is about injection
		},
	}
	if err := k8sClient.Create(ctx, tt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), tt) })

	h := habFor(t, credNS, pc.Name, tokenSecret(t, credNS, tokenData(tok)).Name, nil)
	got := waitHab(t, h, metav1.ConditionFalse, jetonv1alpha1.ReasonTechnicalTokenReuse)
	if !meta.IsStatusConditionTrue(got.Status.Conditions, jetonv1alpha1.ConditionStalled) {
		t.Error("want Stalled=True")
	}
	if msg := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady).Message; !strings.Contains(msg, tt.Name) {
		t.Errorf("message %q does not name the TechnicalToken", msg)
	}
	waitHabEvent(t, h, corev1.EventTypeWarning, jetonv1alpha1.ReasonTechnicalTokenReuse)
	assertNoInjectedSecrets(t, pc.TargetNamespace())

	// A TechnicalToken created later also takes the token away from a Habilitation.
	tok2 := validToken(t)
	h2 := habFor(t, credNS, pc.Name, tokenSecret(t, credNS, tokenData(tok2)).Name, nil)
	waitHab(t, h2, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	waitTarget(t, pc.TargetNamespace(), h2.Name, tok2)
	ttSecret.Data = tokenData(tok2)
	if err := k8sClient.Update(ctx, ttSecret); err != nil {
		t.Fatal(err)
	}
	waitHab(t, h2, metav1.ConditionFalse, jetonv1alpha1.ReasonTechnicalTokenReuse)
	waitGone(t, pc.TargetNamespace(), h2.Name)
}

func TestHabilitationClientNamespaceOwnedElsewhere(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	taken := uniqueName("taken")
	createNamespace(t, taken, map[string]string{jetonv1alpha1.LabelClient: "someone-else"})
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), namespaceObject(taken)) })
	pc := newPublicClient(t, "squatter", func(pc *jetonv1alpha1.PublicClient) { pc.Spec.Namespace = taken })
	waitClientCondition(t, pc.Name, metav1.ConditionFalse, jetonv1alpha1.ReasonNamespaceOwnedElsewhere)

	h := habFor(t, credNS, pc.Name, tokenSecret(t, credNS, tokenData(validToken(t))).Name, nil)
	waitHab(t, h, metav1.ConditionFalse, jetonv1alpha1.ReasonClientNotReady)
	waitHabEvent(t, h, corev1.EventTypeWarning, jetonv1alpha1.ReasonClientNotReady)
	var list corev1.SecretList
	if err := k8sClient.List(ctx, &list, client.InNamespace(taken)); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Errorf("jeton wrote %d Secret(s) into a namespace the client does not own", len(list.Items))
	}
}

func TestHabilitationTargetSecretConflict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pc := habClient(t, "clash")
	name := uniqueName("app-config")
	mine := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: pc.TargetNamespace(), Name: name},
		Data:       map[string][]byte{"TOKEN": []byte("the team's own value")},
	}
	if err := k8sClient.Create(ctx, mine); err != nil {
		t.Fatal(err)
	}
	h := habFor(t, credNS, pc.Name, tokenSecret(t, credNS, tokenData(validToken(t))).Name, func(h *jetonv1alpha1.Habilitation) {
		h.Spec.Target.SecretName = name
	})
	waitHab(t, h, metav1.ConditionFalse, jetonv1alpha1.ReasonTargetSecretConflict)
	waitHabEvent(t, h, corev1.EventTypeWarning, jetonv1alpha1.ReasonTargetSecretConflict)
	got, err := getSecret(ctx, mine.Namespace, mine.Name)
	if err != nil || got.ResourceVersion != mine.ResourceVersion || string(got.Data["TOKEN"]) != "the team's own value" {
		t.Errorf("someone else's Secret was touched (err %v)", err)
	}
}

func TestHabilitationTargetRenameAndKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pc := habClient(t, "rename")
	tok := validToken(t)
	h := habFor(t, credNS, pc.Name, tokenSecret(t, credNS, tokenData(tok)).Name, nil)
	waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	waitTarget(t, pc.TargetNamespace(), h.Name, tok)

	h = getHab(t, h)
	h.Spec.Target.SecretName = "api-entreprise"
	h.Spec.Target.Keys = jetonv1alpha1.TargetKeys{Token: "TOKEN", Recipient: "SIRET", BaseURL: "URL"}
	if err := k8sClient.Update(ctx, h); err != nil {
		t.Fatal(err)
	}
	waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	s := waitTarget(t, pc.TargetNamespace(), "api-entreprise", tok)
	waitGone(t, pc.TargetNamespace(), h.Name)
	waitFor(t, habTimeout, "keys renamed", func(ctx context.Context) error {
		s, _ = getSecret(ctx, s.Namespace, s.Name)
		if string(s.Data["SIRET"]) != pc.Spec.SIRET || s.Data["URL"] == nil || s.Data["RECIPIENT"] != nil || s.Data["BASE_URL"] != nil {
			return fmt.Errorf("keys %v", slices.Sorted(maps.Keys(s.Data)))
		}
		return nil
	})
}

func TestHabilitationRotationRestartsWorkloads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pc := habClient(t, "rotate")
	ns := pc.TargetNamespace()
	tok1 := validToken(t)
	src := tokenSecret(t, credNS, tokenData(tok1))
	h := habFor(t, credNS, pc.Name, src.Name, nil)
	target := h.Name

	// Workloads exist before the first injection (as when jeton is installed later).
	envFrom := deployment(ns, "uses-envfrom", corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app",
		EnvFrom: []corev1.EnvFromSource{{Prefix: "API_ENTREPRISE_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: target}}}}}}})
	unrelated := deployment(ns, "unrelated", corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app",
		EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "other"}}}}}}})
	projected := statefulSet(ns, "uses-projected", corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}},
		Volumes: []corev1.Volume{{Name: "creds", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: target}}}}}}}}})
	projected.Spec.Template.Annotations = map[string]string{jetonv1alpha1.AnnotationRestartedFor: "aaa-other=0123456789abcdef"}
	initEnv := daemonSet(ns, "uses-init-env", corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}},
		InitContainers: []corev1.Container{{Name: "init", Image: "init", Env: []corev1.EnvVar{{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: target}, Key: "TOKEN"}}}}}}})
	workloads := []client.Object{envFrom, unrelated, projected, initEnv}
	for _, w := range workloads {
		if err := k8sClient.Create(ctx, w); err != nil {
			t.Fatal(err)
		}
	}

	waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	waitTarget(t, ns, target, tok1)
	for _, w := range workloads {
		if g := getObj(t, w).GetGeneration(); g != 1 {
			t.Errorf("%s restarted by the first injection (generation %d)", w.GetName(), g)
		}
	}
	unrelatedRV := getObj(t, unrelated).GetResourceVersion()

	// Rotation: the source Secret changes.
	tok2 := validToken(t)
	src.Data = tokenData(tok2)
	if err := k8sClient.Update(ctx, src); err != nil {
		t.Fatal(err)
	}
	waitTarget(t, ns, target, tok2)
	fp2 := token.Fingerprint(tok2)
	want := map[string]string{
		envFrom.Name:   target + "=" + fp2,
		projected.Name: "aaa-other=0123456789abcdef," + target + "=" + fp2, // other entries kept, sorted
		initEnv.Name:   target + "=" + fp2,
	}
	for _, w := range []client.Object{envFrom, projected, initEnv} {
		waitFor(t, habTimeout, w.GetName()+" restarted", func(ctx context.Context) error {
			got := getObj(t, w)
			if a := podTemplate(got).Annotations[jetonv1alpha1.AnnotationRestartedFor]; a != want[w.GetName()] {
				return fmt.Errorf("annotation %q, want %q", a, want[w.GetName()])
			}
			return nil
		})
	}
	// Workloads are restarted before status records the new token: wait for it.
	var got *jetonv1alpha1.Habilitation
	waitFor(t, habTimeout, "status records the rotation", func(ctx context.Context) error {
		got = waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
		if got.Status.TokenFingerprint != fp2 || got.Status.LastRotationTime == nil {
			return fmt.Errorf("status fingerprint %s, lastRotationTime %v; want %s and a time", got.Status.TokenFingerprint, got.Status.LastRotationTime, fp2)
		}
		return nil
	})
	waitHabEvent(t, h, corev1.EventTypeNormal, "Rotated")
	note := waitHabEvent(t, h, corev1.EventTypeNormal, "Restarted")
	for _, n := range []string{envFrom.Name, projected.Name, initEnv.Name} {
		if !strings.Contains(note, n) {
			t.Errorf("Restarted event %q does not name %s", note, n)
		}
	}
	if rv := getObj(t, unrelated).GetResourceVersion(); rv != unrelatedRV {
		t.Errorf("a Deployment not using the Secret was touched")
	}

	// Another pass (a spec change that does not touch the token) restarts nothing again.
	generations := map[string]int64{}
	for _, w := range workloads {
		generations[w.GetName()] = getObj(t, w).GetGeneration()
	}
	got.Spec.DatapassID = "12345"
	if err := k8sClient.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	waitHab(t, got, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	for _, w := range workloads {
		if g := getObj(t, w).GetGeneration(); g != generations[w.GetName()] {
			t.Errorf("%s restarted again (generation %d -> %d) without a new token", w.GetName(), generations[w.GetName()], g)
		}
	}

	// restartWorkloads: false rotates the Secret but leaves workloads alone.
	got = getHab(t, got)
	got.Spec.RestartWorkloads = ptr.To(false)
	if err := k8sClient.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	waitHab(t, got, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	tok3 := validToken(t)
	src.Data = tokenData(tok3)
	if err := k8sClient.Update(ctx, src); err != nil {
		t.Fatal(err)
	}
	waitTarget(t, ns, target, tok3)
	waitFor(t, habTimeout, "status records the third token", func(ctx context.Context) error {
		if fp := getHab(t, got).Status.TokenFingerprint; fp != token.Fingerprint(tok3) {
			return fmt.Errorf("fingerprint %s", fp)
		}
		return nil
	})
	if g := getObj(t, envFrom).GetGeneration(); g != generations[envFrom.Name] {
		t.Errorf("restartWorkloads=false but %s restarted", envFrom.Name)
	}
	assertNoTokenLeak(t)
}

func TestHabilitationDriftIsRestored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pc := habClient(t, "drift")
	tok := validToken(t)
	h := habFor(t, credNS, pc.Name, tokenSecret(t, credNS, tokenData(tok)).Name, nil)
	waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	s := waitTarget(t, pc.TargetNamespace(), h.Name, tok)

	s.Data["TOKEN"] = []byte("edited by hand")
	s.Data["RECIPIENT"] = []byte("13002526500013") // the vendor's own SIRET: must never stay
	delete(s.Labels, jetonv1alpha1.LabelHabilitation)
	if err := k8sClient.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	// The watch maps the edit back through the labels the Secret had before it.
	waitFor(t, habTimeout, "edited Secret restored", func(ctx context.Context) error {
		got, err := getSecret(ctx, s.Namespace, s.Name)
		if err != nil {
			return err
		}
		if string(got.Data["TOKEN"]) != tok || string(got.Data["RECIPIENT"]) != pc.Spec.SIRET || got.Labels[jetonv1alpha1.LabelHabilitation] != h.Name {
			return fmt.Errorf("not restored yet")
		}
		return nil
	})

	s, _ = getSecret(ctx, s.Namespace, s.Name)
	s.Data["TOKEN"] = []byte("edited again")
	if err := k8sClient.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	waitTarget(t, s.Namespace, s.Name, tok)

	// A key added by hand belongs to its field manager, so apply alone cannot drop it:
	// the Secret must still end up holding exactly jeton's keys.
	s, _ = getSecret(ctx, s.Namespace, s.Name)
	s.Data["EXTRA"] = []byte("added by hand")
	if err := k8sClient.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	waitFor(t, habTimeout, "hand-added key removed", func(ctx context.Context) error {
		got, err := getSecret(ctx, s.Namespace, s.Name)
		if err != nil {
			return err
		}
		if _, ok := got.Data["EXTRA"]; ok || string(got.Data["TOKEN"]) != tok {
			return fmt.Errorf("keys %v", slices.Sorted(maps.Keys(got.Data)))
		}
		return nil
	})

	if err := k8sClient.Delete(ctx, s); err != nil {
		t.Fatal(err)
	}
	waitTarget(t, s.Namespace, s.Name, tok)
	waitHabEvent(t, h, corev1.EventTypeNormal, "Restored")
}

func TestHabilitationRevocation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	setup := func(t *testing.T, prefix string) (*jetonv1alpha1.PublicClient, *corev1.Secret, *jetonv1alpha1.Habilitation) {
		pc := habClient(t, prefix)
		tok := validToken(t)
		src := tokenSecret(t, credNS, tokenData(tok))
		h := habFor(t, credNS, pc.Name, src.Name, nil)
		waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
		waitTarget(t, pc.TargetNamespace(), h.Name, tok)
		return pc, src, h
	}

	t.Run("source Secret deleted", func(t *testing.T) {
		t.Parallel()
		pc, src, h := setup(t, "revsrc")
		if err := k8sClient.Delete(ctx, src); err != nil {
			t.Fatal(err)
		}
		waitGone(t, pc.TargetNamespace(), h.Name)
		waitHab(t, h, metav1.ConditionFalse, jetonv1alpha1.ReasonSecretNotFound)
		waitHabEvent(t, h, corev1.EventTypeWarning, jetonv1alpha1.ReasonSecretNotFound)
	})
	t.Run("Habilitation deleted", func(t *testing.T) {
		t.Parallel()
		pc, _, h := setup(t, "revhab")
		if err := k8sClient.Delete(ctx, h); err != nil {
			t.Fatal(err)
		}
		waitGone(t, pc.TargetNamespace(), h.Name)
		waitFor(t, habTimeout, "Habilitation gone (finalizer removed)", func(ctx context.Context) error {
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(h), &jetonv1alpha1.Habilitation{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("still there (err %v)", err)
			}
			return nil
		})
	})
	t.Run("client deleted", func(t *testing.T) {
		t.Parallel()
		pc, _, h := setup(t, "revpc")
		if err := k8sClient.Delete(ctx, pc); err != nil {
			t.Fatal(err)
		}
		waitGone(t, pc.TargetNamespace(), h.Name)
		waitHab(t, h, metav1.ConditionFalse, jetonv1alpha1.ReasonClientNotFound)
	})
}

func TestHabilitationExpiry(t *testing.T) {
	t.Parallel()
	pc := habClient(t, "expiry")

	t.Run("expiring in 10 days", func(t *testing.T) {
		t.Parallel()
		tok := issueJWT(t, time.Now().Add(10*24*time.Hour))
		h := habFor(t, credNS, pc.Name, tokenSecret(t, credNS, tokenData(tok)).Name, nil)
		got := waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonTokenExpiringSoon)
		waitTarget(t, pc.TargetNamespace(), h.Name, tok)
		note := waitHabEvent(t, h, corev1.EventTypeWarning, jetonv1alpha1.ReasonTokenExpiringSoon)
		if !strings.Contains(note, "renew") {
			t.Errorf("event %q does not say to renew", note)
		}
		if s := kstatusOf(t, got); s != status.CurrentStatus {
			t.Errorf("kstatus %s, want Current: an expiring token still works", s)
		}
	})
	t.Run("expired yesterday", func(t *testing.T) {
		t.Parallel()
		tok := issueJWT(t, time.Now().Add(-24*time.Hour))
		h := habFor(t, credNS, pc.Name, tokenSecret(t, credNS, tokenData(tok)).Name, nil)
		got := waitHab(t, h, metav1.ConditionFalse, jetonv1alpha1.ReasonTokenExpired)
		waitHabEvent(t, h, corev1.EventTypeWarning, jetonv1alpha1.ReasonTokenExpired)
		// Kept: an expired token is harmless and gives workloads a clear 401.
		waitTarget(t, pc.TargetNamespace(), h.Name, tok)
		if got.Status.ExpiresAt == nil || got.Status.ExpiresAt.After(time.Now()) {
			t.Errorf("status.expiresAt %v, want yesterday", got.Status.ExpiresAt)
		}
	})
	t.Run("declared expiry of a Démarches Numériques token", func(t *testing.T) {
		t.Parallel()
		dn := rememberToken(dnToken("9b6a4b1e-2c3d-4e5f-8a9b-0c1d2e3f4a5b", "s3cr3t-dn-value-for-tests"))
		at := metav1.NewTime(time.Now().Add(5 * 24 * time.Hour).Truncate(time.Second))
		h := habFor(t, credNS, pc.Name, tokenSecret(t, credNS, tokenData(dn)).Name, func(h *jetonv1alpha1.Habilitation) {
			h.Spec.API = jetonv1alpha1.DemarchesNumeriques
			h.Spec.ExpiresAt = &at
		})
		got := waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonTokenExpiringSoon)
		// A date: the token works through that whole day, Paris time.
		if got.Status.ExpiresAt == nil || !got.Status.ExpiresAt.Time.Equal(tokensource.DNExpiry(at.Time)) || got.Status.TokenID != "9b6a4b1e-2c3d-4e5f-8a9b-0c1d2e3f4a5b" {
			t.Errorf("status %+v, want spec.expiresAt and the DN token id", got.Status.TokenStatus)
		}
		s := waitTarget(t, pc.TargetNamespace(), h.Name, dn)
		if u := string(s.Data["BASE_URL"]); !strings.Contains(u, "demarche") {
			t.Errorf("BASE_URL %q, want the Démarches Numériques URL", u)
		}
	})
}

func TestHabilitationScopesMissing(t *testing.T) {
	t.Parallel()
	pc := habClient(t, "scopes")
	tok := issueJWT(t, time.Now().Add(365*24*time.Hour), "unites_legales_etablissements_siege")
	h := habFor(t, credNS, pc.Name, tokenSecret(t, credNS, tokenData(tok)).Name, func(h *jetonv1alpha1.Habilitation) {
		h.Spec.ExpectedScopes = []string{"unites_legales_etablissements_siege", "attestations_fiscales"}
	})
	got := waitHab(t, h, metav1.ConditionFalse, jetonv1alpha1.ReasonScopesMissing)
	if msg := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady).Message; !strings.Contains(msg, "attestations_fiscales") ||
		strings.Contains(msg, "unites_legales_etablissements_siege,") {
		t.Errorf("message %q should name exactly the missing scope", msg)
	}
	waitHabEvent(t, h, corev1.EventTypeWarning, jetonv1alpha1.ReasonScopesMissing)
	// Still the client's own token: kept injected (documented decision).
	waitTarget(t, pc.TargetNamespace(), h.Name, tok)
}

// TestHabilitationSecretsNeverLeak runs a scenario touching every path that handles a token
// (inject, rotate, conflict, invalid), then searches logs, events and statuses for tokens.
func TestHabilitationSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	x := habClient(t, "leakx")
	y := habClient(t, "leaky")
	tok := validToken(t)
	src := tokenSecret(t, credNS, tokenData(tok))
	hx := habFor(t, credNS, x.Name, src.Name, named("a-leak"))
	waitHab(t, hx, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	hy := habFor(t, credNS, y.Name, tokenSecret(t, credNS, tokenData(tok)).Name, named("z-leak"))
	waitHab(t, hy, metav1.ConditionFalse, jetonv1alpha1.ReasonTokenConflict)
	tok2 := validToken(t)
	src.Data = tokenData(tok2)
	if err := k8sClient.Update(ctx, src); err != nil {
		t.Fatal(err)
	}
	waitTarget(t, x.TargetNamespace(), hx.Name, tok2)
	waitHab(t, hy, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected) // tok is free now
	src.Data = tokenData(strings.Replace(tok2, ".", "", 1))
	if err := k8sClient.Update(ctx, src); err != nil {
		t.Fatal(err)
	}
	waitHab(t, hx, metav1.ConditionFalse, jetonv1alpha1.ReasonInvalidToken)
	rememberToken(strings.Replace(tok2, ".", "", 1))
	assertNoTokenLeak(t)
}

// --- helpers specific to these tests ---

// named gives a Habilitation a unique name with a prefix that orders it.
func named(prefix string) func(*jetonv1alpha1.Habilitation) {
	return func(h *jetonv1alpha1.Habilitation) { h.Name = uniqueName(prefix) }
}

func touchHab(t *testing.T, h *jetonv1alpha1.Habilitation) {
	t.Helper()
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{"test.jeton.dev/touched":%q}}}`, time.Now().Format(time.RFC3339Nano))
	if err := k8sClient.Patch(context.Background(), h.DeepCopy(), client.RawPatch("application/merge-patch+json", patch)); err != nil {
		t.Fatal(err)
	}
}

func getHab(t *testing.T, h *jetonv1alpha1.Habilitation) *jetonv1alpha1.Habilitation {
	t.Helper()
	got := &jetonv1alpha1.Habilitation{}
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(h), got); err != nil {
		t.Fatal(err)
	}
	return got
}

func getSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	err := k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s)
	return s, err
}

func getObj(t *testing.T, obj client.Object) client.Object {
	t.Helper()
	got := obj.DeepCopyObject().(client.Object)
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(obj), got); err != nil {
		t.Fatal(err)
	}
	return got
}

func podTemplate(obj client.Object) *corev1.PodTemplateSpec {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &o.Spec.Template
	case *appsv1.StatefulSet:
		return &o.Spec.Template
	case *appsv1.DaemonSet:
		return &o.Spec.Template
	}
	panic(fmt.Sprintf("no pod template in %T", obj))
}

func template(name string, spec corev1.PodSpec) (*metav1.LabelSelector, corev1.PodTemplateSpec) {
	labels := map[string]string{"app": name}
	return &metav1.LabelSelector{MatchLabels: labels}, corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec}
}

func deployment(ns, name string, spec corev1.PodSpec) *appsv1.Deployment {
	sel, tmpl := template(name, spec)
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: appsv1.DeploymentSpec{Selector: sel, Template: tmpl}}
}

func statefulSet(ns, name string, spec corev1.PodSpec) *appsv1.StatefulSet {
	sel, tmpl := template(name, spec)
	return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: appsv1.StatefulSetSpec{Selector: sel, Template: tmpl}}
}

func daemonSet(ns, name string, spec corev1.PodSpec) *appsv1.DaemonSet {
	sel, tmpl := template(name, spec)
	return &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: appsv1.DaemonSetSpec{Selector: sel, Template: tmpl}}
}

// kstatusOf computes the kstatus of obj as kubectl, Argo CD and Flux do.
func kstatusOf(t *testing.T, obj client.Object) status.Status {
	t.Helper()
	gvk, err := apiutil.GVKForObject(obj, env.Scheme)
	if err != nil {
		t.Fatal(err)
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(gvk)
	res, err := status.Compute(u)
	if err != nil {
		t.Fatal(err)
	}
	return res.Status
}

// dnToken builds a Démarches Numériques token: base64url of "<token-id UUID>;<secret>".
func dnToken(id, secret string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(id + ";" + secret))
}
