package injection

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

func TestEffectiveDelivery(t *testing.T) {
	const direct, gateway = jetonv1alpha1.DeliveryDirect, jetonv1alpha1.DeliveryGateway
	tests := []struct {
		spec, def, want jetonv1alpha1.Delivery
	}{
		{"", "", direct},
		{"", direct, direct},
		{"", gateway, gateway},
		{direct, gateway, direct},
		{gateway, direct, gateway},
		{gateway, "", gateway},
	}
	for _, tt := range tests {
		h := &jetonv1alpha1.Habilitation{Spec: jetonv1alpha1.HabilitationSpec{Delivery: tt.spec}}
		if got := EffectiveDelivery(h, tt.def); got != tt.want {
			t.Errorf("spec %q, default %q: %q, want %q", tt.spec, tt.def, got, tt.want)
		}
	}
}

// The delivered fingerprint changes with the credential and with the gateway URL, has a
// token fingerprint's shape (the restarted-for annotation takes it), and is no part of
// the credential.
func TestGatewayDeliveryFingerprint(t *testing.T) {
	const cred = "jgw1.0f3b6a4e-1111-2222-3333-444455556666.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	const url = "http://jeton-gateway.jeton-system.svc:8080"
	d := GatewayDelivery(cred, url)
	if d.Token != cred || d.BaseURL != url {
		t.Fatalf("delivers %q at %q", d.Token, d.BaseURL)
	}
	if len(d.Fingerprint) != 16 || !restartedForEntry("secret", d.Fingerprint) || strings.Contains(cred, d.Fingerprint) {
		t.Errorf("fingerprint %q: want 16 hex digits, not taken from the credential", d.Fingerprint)
	}
	for name, other := range map[string]Delivered{
		"another credential": GatewayDelivery(cred[:len(cred)-1]+"0", url),
		"another URL":        GatewayDelivery(cred, "https://jeton-gateway.jeton-system.svc:8443"),
	} {
		if other.Fingerprint == d.Fingerprint {
			t.Errorf("%s: same fingerprint, so no restart", name)
		}
	}
	if GatewayDelivery(cred, url) != d {
		t.Error("not deterministic: every pass would restart")
	}
	if got := DirectDelivery("tok", "fp", "https://api").Fingerprint; got != "fp" {
		t.Errorf("Direct delivered fingerprint %q, want the token's", got)
	}
}

func TestPreviousDelivered(t *testing.T) {
	tests := []struct {
		name string
		st   jetonv1alpha1.HabilitationStatus
		want string
	}{
		{"first pass", jetonv1alpha1.HabilitationStatus{}, ""},
		{"status written before deliveredFingerprint existed (Direct, injected)",
			jetonv1alpha1.HabilitationStatus{TokenStatus: jetonv1alpha1.TokenStatus{TokenFingerprint: "tok"}, TargetSecret: &jetonv1alpha1.SecretReference{}}, "tok"},
		{"token recorded by a refusal, never delivered",
			jetonv1alpha1.HabilitationStatus{TokenStatus: jetonv1alpha1.TokenStatus{TokenFingerprint: "tok"}}, ""},
		{"delivered, then removed by a refusal",
			jetonv1alpha1.HabilitationStatus{TokenStatus: jetonv1alpha1.TokenStatus{TokenFingerprint: "tok"}, DeliveredFingerprint: "cred"}, "cred"},
		{"gateway", jetonv1alpha1.HabilitationStatus{TokenStatus: jetonv1alpha1.TokenStatus{TokenFingerprint: "tok"}, DeliveredFingerprint: "cred"}, "cred"},
	}
	for _, tt := range tests {
		if got := PreviousDelivered(&tt.st); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestGatewayNotConfiguredNamesItsSource(t *testing.T) {
	byDefault := GatewayNotConfigured(&jetonv1alpha1.Habilitation{})
	explicit := GatewayNotConfigured(&jetonv1alpha1.Habilitation{Spec: jetonv1alpha1.HabilitationSpec{Delivery: jetonv1alpha1.DeliveryGateway}})
	if byDefault.Reason != jetonv1alpha1.ReasonGatewayNotConfigured || !byDefault.Warning {
		t.Errorf("verdict %+v", byDefault)
	}
	if !strings.Contains(byDefault.Message, "--default-delivery") || !strings.Contains(explicit.Message, "(spec.delivery)") {
		t.Errorf("messages %q / %q do not say where Gateway comes from", byDefault.Message, explicit.Message)
	}
}

// In Gateway delivery Ready does not say the token is injected into the client namespace.
func TestJudgeGatewayWording(t *testing.T) {
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	exp := metav1.NewTime(now.Add(365 * 24 * time.Hour))
	h := &jetonv1alpha1.Habilitation{Status: jetonv1alpha1.HabilitationStatus{
		TokenStatus:  jetonv1alpha1.TokenStatus{TokenFingerprint: "0123456789abcdef", ExpiresAt: &exp},
		TargetSecret: &jetonv1alpha1.SecretReference{Namespace: "client", Name: "api"},
		Delivery:     jetonv1alpha1.DeliveryGateway,
	}}
	v, _ := Judge(now, h)
	if v.Reason != jetonv1alpha1.ReasonInjected || strings.Contains(v.Message, "injected into") || !strings.Contains(v.Message, "served by the gateway") {
		t.Errorf("gateway: %s %q", v.Reason, v.Message)
	}
	h.Status.Delivery = jetonv1alpha1.DeliveryDirect
	if v, _ := Judge(now, h); !strings.Contains(v.Message, "injected into Secret client/api") {
		t.Errorf("direct: %q", v.Message)
	}
}
