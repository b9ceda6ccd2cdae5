package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/testenv"
)

// rotate-gateway-credential: on a Habilitation delivered through the gateway it sets the
// rotation annotation (RFC 3339, UTC, nanoseconds), waits for the operator, and the
// client's Secret holds a new credential, printed nowhere; on one delivered Direct it is
// refused with a clear error and changes nothing.
func TestRotateGatewayCredential(t *testing.T) {
	ctx := context.Background()
	em, url := takeEmulator(t)
	f := fleetIn(t, nsCommands, em, url, nil)

	// A Habilitation of the same client delivered through the gateway.
	tok, _, err := em.Mint(jetonv1alpha1.APIParticulier, emulator.MintOptions{Scopes: []string{"cnaf_quotient_familial"}})
	if err != nil {
		t.Fatal(err)
	}
	remember(tok)
	src := tokenSecret(t, nsCommands, uniqueName("gw-token"), tok)
	gw := &jetonv1alpha1.Habilitation{ObjectMeta: metav1.ObjectMeta{Namespace: nsCommands, Name: uniqueName("gw")},
		Spec: jetonv1alpha1.HabilitationSpec{ClientRef: jetonv1alpha1.ClientReference{Name: f.client.Name}, API: jetonv1alpha1.APIParticulier,
			Delivery: jetonv1alpha1.DeliveryGateway, TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: src.Name, Key: "token"}}}
	create(t, gw)
	waitReason(t, gw, jetonv1alpha1.ReasonInjected)
	before := injectedToken(t, f.client.Name, gw.Name)

	r := kubectlJeton(t, "", "rotate-gateway-credential", gw.Name, "--timeout", "90s")
	wantCode(t, r, exitOK, "rotate-gateway-credential")
	contains(t, r, "rotate-gateway-credential", "Habilitation "+nsCommands+"/"+gw.Name+": gateway credential rotation requested at",
		"new gateway credential (fingerprint", "delivered to Secret "+f.client.Name+"/"+gw.Name)
	got := &jetonv1alpha1.Habilitation{}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(gw), got); err != nil {
		t.Fatal(err)
	}
	stamp := got.Annotations[jetonv1alpha1.AnnotationGatewayCredentialRotation]
	if at, err := time.Parse(time.RFC3339Nano, stamp); err != nil || at.Location() != time.UTC || time.Since(at) > time.Minute+30*time.Second {
		t.Errorf("rotation annotation %q: want the current time in RFC 3339, UTC (%v)", stamp, err)
	}
	after := injectedToken(t, f.client.Name, gw.Name)
	if after == before || !strings.HasPrefix(after, "jgw1.") {
		t.Errorf("the Secret's TOKEN did not become a new gateway credential")
	}
	for _, cred := range []string{before, after} {
		if strings.Contains(r.stdout+r.stderr, cred) {
			t.Error("the plugin printed a gateway credential")
		}
	}

	// A Direct Habilitation: refused, nothing patched.
	r = kubectlJeton(t, "", "rotate-gateway-credential", "-n", nsCommands, f.hab.Name)
	wantCode(t, r, exitError, "rotate-gateway-credential (Direct)")
	contains(t, r, "rotate-gateway-credential (Direct)", "is delivered Direct (status.delivery), not through the gateway", "no gateway credential to rotate")
	direct := &jetonv1alpha1.Habilitation{}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(f.hab), direct); err != nil {
		t.Fatal(err)
	}
	if v, ok := direct.Annotations[jetonv1alpha1.AnnotationGatewayCredentialRotation]; ok {
		t.Errorf("a refused rotation still set the annotation (%q)", v)
	}
}

// injectedToken reads the TOKEN of Secret namespace/name.
func injectedToken(t *testing.T, namespace, name string) string {
	t.Helper()
	s := &corev1.Secret{}
	testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("Secret %s/%s", namespace, name), func(ctx context.Context) error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s)
	})
	return string(s.Data["TOKEN"])
}
