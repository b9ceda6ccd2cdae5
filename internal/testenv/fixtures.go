package testenv

import (
	"math/rand/v2"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/siret"
)

// RandomSIRET returns a valid SIRET (14 digits, Luhn checksum) outside La Poste's SIREN.
func RandomSIRET(r *rand.Rand) string {
	for {
		b := make([]byte, 13, 14)
		for i := range b {
			b[i] = byte('0' + r.IntN(10))
		}
		if strings.HasPrefix(string(b), "356000000") {
			continue
		}
		for d := byte('0'); d <= '9'; d++ {
			if s := string(append(b, d)); siret.Validate(s) == nil {
				return s
			}
		}
	}
}

// Workload is a Deployment named name in namespace that reads Secret secret through
// envFrom, compliant with the restricted Pod Security level as client applications are.
// On the plain control plane nothing runs it (jeton only patches it); on a cluster started
// WithCluster it rolls out to Running pods on simulated nodes.
func Workload(namespace, name, secret string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:  "app",
						Image: "registry.example/teleservice:1",
						EnvFrom: []corev1.EnvFromSource{{
							Prefix:    "API_",
							SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: secret}},
						}},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
				},
			},
		},
	}
}

// Habilitation is Habilitation name of client clientName for api in namespace, and the
// Secret <name>-token there that holds its token tok under key "token".
func Habilitation(namespace, name, clientName string, api jetonv1alpha1.API, tok string) (*corev1.Secret, *jetonv1alpha1.Habilitation) {
	src := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name + "-token"},
		Data:       map[string][]byte{"token": []byte(tok)},
	}
	h := &jetonv1alpha1.Habilitation{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: jetonv1alpha1.HabilitationSpec{
			ClientRef:      jetonv1alpha1.ClientReference{Name: clientName},
			API:            api,
			TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: src.Name, Key: "token"},
		},
	}
	return src, h
}
