package main

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// Every command, in every format, on success and on error, over a fleet whose tokens are
// known: nothing the plugin prints holds a token, whole or in part. kubectlJeton checks
// each run as it goes; this test makes sure every command ran, then checks all the output
// of the test binary at once.
func TestNoTokenInAnyOutput(t *testing.T) {
	em, url := takeEmulator(t)
	f := fleetIn(t, nsLeak, em, url, nil)
	waitReason(t, f.tt, jetonv1alpha1.ReasonProbeSucceeded)
	// A Secret whose value is not a token but must not be printed either.
	notAToken := remember("s3cr3t-p4ssw0rd-of-the-credentials-admin-0123456789")
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: nsLeak, Name: "password"}, StringData: map[string]string{"token": notAToken, "other": notAToken}})

	injected := f.hab.Name // the injected Secret's name: the Habilitation's
	runs := [][]string{
		{"status"}, {"status", "-n", nsLeak}, {"status", "-A"},
		{"inventory"}, {"inventory", "-n", nsLeak, "-o", "csv"}, {"inventory", "-o", "json"}, {"inventory", "-o", "markdown"},
		{"who-uses", "-n", f.client.Name, injected}, {"who-uses", "-n", f.client.Name, injected, "-o", "json"},
		{"reconcile", "hab", f.hab.Name}, {"reconcile", "tt", f.tt.Name}, {"reconcile", "pcl", f.client.Name},
		{"probe", "-n", nsLeak, f.tt.Name},
		{"inspect-token", "-n", nsLeak, f.hab.Spec.TokenSecretRef.Name},
		{"inspect-token", "-n", nsLeak, f.tt.Spec.TokenSecretRef.Name, "token", "-o", "json"},
		{"inspect-token", "-n", f.client.Name, injected}, // the injected copy: key TOKEN
		{"inspect-token", "-n", f.client.Name, injected, "RECIPIENT"},
		{"inspect-token", "-n", nsLeak, "password"},
		{"inspect-token", "-n", nsLeak, "password", "other", "--api", "DemarchesNumeriques"},
		{"inspect-token", "-n", nsLeak, f.hab.Spec.TokenSecretRef.Name, "nokey"},
		{"inspect-token", "-n", nsLeak, f.hab.Spec.TokenSecretRef.Name, "--api", "DemarchesNumeriques"},
		{"__complete", "who-uses", "-n", f.client.Name, ""},
		{"__complete", "inspect-token", "-n", nsLeak, ""},
		{"__complete", "reconcile", "hab", ""},
	}
	for _, args := range runs {
		kubectlJeton(t, "", args...)
	}
	for _, stdin := range []string{f.habToken, f.ttToken, " " + f.habToken + "\n", "Bearer " + f.habToken, notAToken, f.habToken[:len(f.habToken)/2]} {
		kubectlJeton(t, stdin, "inspect-token")
		kubectlJeton(t, stdin, "inspect-token", "-o", "json", "--api", "APIParticulier")
	}

	all := allOutput.String()
	if !strings.Contains(all, "Fingerprint:") || !strings.Contains(all, f.hab.Status.TokenFingerprint) {
		t.Fatalf("the runs printed no fingerprint: did they run?\n%s", all)
	}
	if l := leaks(all); len(l) > 0 {
		t.Fatalf("the plugin printed tokens: %v", l)
	}
}
