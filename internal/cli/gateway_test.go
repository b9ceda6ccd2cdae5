package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

func TestGatewayRotationRefused(t *testing.T) {
	now := metav1.Now()
	tests := []struct {
		name    string
		h       jetonv1alpha1.Habilitation
		wantErr string
	}{
		{name: "gateway", h: jetonv1alpha1.Habilitation{Status: jetonv1alpha1.HabilitationStatus{Delivery: jetonv1alpha1.DeliveryGateway}}},
		{name: "direct", h: jetonv1alpha1.Habilitation{Status: jetonv1alpha1.HabilitationStatus{Delivery: jetonv1alpha1.DeliveryDirect}},
			wantErr: "is delivered Direct (status.delivery), not through the gateway"},
		{name: "asked for Gateway, not delivered yet", h: jetonv1alpha1.Habilitation{Spec: jetonv1alpha1.HabilitationSpec{Delivery: jetonv1alpha1.DeliveryGateway}},
			wantErr: "has no delivery in force yet"},
		{name: "being deleted", h: jetonv1alpha1.Habilitation{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &now},
			Status: jetonv1alpha1.HabilitationStatus{Delivery: jetonv1alpha1.DeliveryGateway}}, wantErr: "is being deleted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.h.Namespace, tt.h.Name = "jeton-system", "trifouilly"
			err := GatewayRotationRefused(&tt.h)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// The stamp is RFC 3339 in UTC with nanoseconds (two rotations in a row differ), and the
// patch sets exactly the rotation annotation.
func TestGatewayRotationPatch(t *testing.T) {
	at := time.Date(2026, 12, 7, 7, 8, 9, 123456789, time.FixedZone("CET", 3600))
	stamp := GatewayRotationStamp(at)
	if stamp != "2026-12-07T06:08:09.123456789Z" {
		t.Errorf("stamp %q", stamp)
	}
	if GatewayRotationStamp(at.Add(time.Nanosecond)) == stamp {
		t.Error("two rotations a nanosecond apart get the same stamp")
	}
	var patch struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(GatewayRotationPatch(stamp), &patch); err != nil {
		t.Fatal(err)
	}
	if a := patch.Metadata.Annotations; len(a) != 1 || a[jetonv1alpha1.AnnotationGatewayCredentialRotation] != stamp {
		t.Errorf("patch annotations %v", a)
	}
}
