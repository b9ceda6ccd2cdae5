package main

import (
	"context"
	"encoding/base64"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with the current output")

// goldenKey signs the golden tokens: the same key and claims give the same tokens, hence the
// same fingerprints, on every run.
var goldenKey = []byte("kubectl-jeton golden signing key, not a secret")

func goldenJWT(t *testing.T, jti string, iat, exp time.Time, scopes ...string) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"uid": "8d1f2c3a-0000-4000-8000-00000000beef", "jti": jti, "sub": "Habilitation de démonstration",
		"scopes": scopes, "iat": iat.Unix(), "exp": exp.Unix(), "version": "1.0",
	}).SignedString(goldenKey)
	if err != nil {
		t.Fatal(err)
	}
	return remember(tok)
}

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// forever is a renewBefore long enough that the operator, on today's clock, reports a token
// expiring around goldenNow as TokenExpiringSoon, as it will on that day.
var forever = &metav1.Duration{Duration: 1_000_000 * time.Hour}

func goldenClient(t *testing.T, name, display, siret string) *jetonv1alpha1.PublicClient {
	t.Helper()
	pc := &jetonv1alpha1.PublicClient{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: jetonv1alpha1.PublicClientSpec{DisplayName: display, SIRET: siret}}
	create(t, pc)
	return pc
}

func goldenHab(t *testing.T, name, clientName string, api jetonv1alpha1.API, datapass, secret string, mutate func(*jetonv1alpha1.Habilitation)) *jetonv1alpha1.Habilitation {
	t.Helper()
	h := &jetonv1alpha1.Habilitation{
		ObjectMeta: metav1.ObjectMeta{Namespace: nsGolden, Name: name},
		Spec: jetonv1alpha1.HabilitationSpec{
			ClientRef: jetonv1alpha1.ClientReference{Name: clientName}, API: api, DatapassID: datapass,
			TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: secret, Key: "token"},
		},
	}
	if mutate != nil {
		mutate(h)
	}
	create(t, h)
	return h
}

func goldenTT(t *testing.T, name string, api jetonv1alpha1.API, secret string) *jetonv1alpha1.TechnicalToken {
	t.Helper()
	tt := &jetonv1alpha1.TechnicalToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: nsGolden, Name: name},
		Spec: jetonv1alpha1.TechnicalTokenSpec{
			API: api, BaseURL: fakeAPI, TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: secret, Key: "token"},
			// One probe, at creation: the next is an hour away, so status does not move.
			Interval: &metav1.Duration{Duration: time.Hour}, Timeout: &metav1.Duration{Duration: 10 * time.Second},
			FailureThreshold: 1,
		},
	}
	create(t, tt)
	return tt
}

// restricted is a pod spec fit for a client namespace (Pod Security restricted).
func restricted(containers ...corev1.Container) corev1.PodSpec {
	for i := range containers {
		containers[i].Image = "registry.example/teleservice:1"
		containers[i].SecurityContext = &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		}
	}
	return corev1.PodSpec{
		SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
		Containers:      containers,
	}
}

func deploymentOf(namespace, name string, spec corev1.PodSpec) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec}}}
}

// goldenFleet creates the golden fleet (a bit of everything status sorts) and waits until
// the operator has reported on all of it.
func goldenFleet(t *testing.T) {
	t.Helper()
	trif := goldenClient(t, "golden-trifouilly", "Commune de Trifouilly-les-Oies", "21310001600012")
	bord := goldenClient(t, "golden-bordeciel", "Communauté de communes de Bordeciel", "73282932000074")

	shared := goldenJWT(t, "0b7e5a4c-1d2e-4f60-8a9b-000000000001", day(2097, 6, 1), day(2100, 6, 1), "attestations_fiscales", "unites_legales_etablissements_insee")
	tokenSecret(t, nsGolden, "trifouilly-api-entreprise-token", shared)
	tokenSecret(t, nsGolden, "trifouilly-api-particulier-token", goldenJWT(t, "0b7e5a4c-1d2e-4f60-8a9b-000000000002", day(2097, 7, 20), day(2099, 1, 20), "cnaf_quotient_familial"))
	tokenSecret(t, nsGolden, "trifouilly-historique-token", goldenJWT(t, "0b7e5a4c-1d2e-4f60-8a9b-000000000003", day(2023, 1, 1), day(2024, 6, 30), "attestations_fiscales"))
	tokenSecret(t, nsGolden, "trifouilly-mauvais-jeton-token", "not-a-token")
	tokenSecret(t, nsGolden, "bordeciel-api-particulier-token", goldenJWT(t, "0b7e5a4c-1d2e-4f60-8a9b-000000000004", day(2097, 9, 15), day(2099, 3, 15), "cnaf_quotient_familial"))
	tokenSecret(t, nsGolden, "bordeciel-demarches-numeriques-token",
		remember(base64.RawURLEncoding.EncodeToString([]byte("5c4b3a29-1807-4f6e-9d8c-7b6a5f4e3d2c;a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5"))))
	tokenSecret(t, nsGolden, "technical-api-entreprise-token", goldenJWT(t, "0b7e5a4c-1d2e-4f60-8a9b-0000000000f1", day(2098, 6, 1), day(2100, 1, 1), "unites_legales_etablissements_insee"))
	tokenSecret(t, nsGolden, "technical-api-particulier-token", goldenJWT(t, "0b7e5a4c-1d2e-4f60-8a9b-0000000000f2", day(2098, 6, 1), day(2100, 1, 1), "cnaf_quotient_familial"))

	waitReason(t, trif, jetonv1alpha1.ReasonReady)
	waitReason(t, bord, jetonv1alpha1.ReasonReady)
	first := goldenHab(t, "trifouilly-api-entreprise", trif.Name, jetonv1alpha1.APIEntreprise, "51234", "trifouilly-api-entreprise-token", nil)
	waitReason(t, first, jetonv1alpha1.ReasonInjected)
	// The same token for another client, a second later: refused (the older binding wins).
	testenv.WaitFor(t, 5*time.Second, "the next second", func(context.Context) error {
		if !time.Now().After(first.CreationTimestamp.Add(time.Second)) {
			return os.ErrDeadlineExceeded
		}
		return nil
	})
	tokenSecret(t, nsGolden, "bordeciel-api-entreprise-token", shared)
	habs := map[*jetonv1alpha1.Habilitation]string{
		goldenHab(t, "bordeciel-api-entreprise", bord.Name, jetonv1alpha1.APIEntreprise, "52001", "bordeciel-api-entreprise-token", nil): jetonv1alpha1.ReasonTokenConflict,
		goldenHab(t, "trifouilly-api-particulier", trif.Name, jetonv1alpha1.APIParticulier, "51877", "trifouilly-api-particulier-token",
			func(h *jetonv1alpha1.Habilitation) { h.Spec.RenewBefore = forever }): jetonv1alpha1.ReasonTokenExpiringSoon,
		goldenHab(t, "trifouilly-historique", trif.Name, jetonv1alpha1.APIEntreprise, "40001", "trifouilly-historique-token", nil):       jetonv1alpha1.ReasonTokenExpired,
		goldenHab(t, "trifouilly-mauvais-jeton", trif.Name, jetonv1alpha1.APIEntreprise, "51999", "trifouilly-mauvais-jeton-token", nil): jetonv1alpha1.ReasonInvalidToken,
		goldenHab(t, "trifouilly-sans-secret", trif.Name, jetonv1alpha1.APIParticulier, "", "trifouilly-sans-secret-token", nil):         jetonv1alpha1.ReasonSecretNotFound,
		goldenHab(t, "bordeciel-api-particulier", bord.Name, jetonv1alpha1.APIParticulier, "52002", "bordeciel-api-particulier-token",
			func(h *jetonv1alpha1.Habilitation) { h.Spec.RenewBefore = forever }): jetonv1alpha1.ReasonTokenExpiringSoon,
		goldenHab(t, "bordeciel-demarches-numeriques", bord.Name, jetonv1alpha1.DemarchesNumeriques, "", "bordeciel-demarches-numeriques-token",
			func(h *jetonv1alpha1.Habilitation) {
				h.Spec.ExpiresAt = &metav1.Time{Time: day(2098, 12, 30)}
				h.Spec.RenewBefore = forever
				h.Spec.Target.SecretName = "demarches-numeriques"
			}): jetonv1alpha1.ReasonTokenExpiringSoon,
	}
	tts := map[*jetonv1alpha1.TechnicalToken]string{
		goldenTT(t, "api-entreprise", jetonv1alpha1.APIEntreprise, "technical-api-entreprise-token"):    jetonv1alpha1.ReasonProbeSucceeded,
		goldenTT(t, "api-particulier", jetonv1alpha1.APIParticulier, "technical-api-particulier-token"): jetonv1alpha1.ReasonUnauthorized,
	}
	for h, reason := range habs {
		waitReason(t, h, reason)
	}
	for tt, reason := range tts {
		waitReason(t, tt, reason)
	}

	// Workloads of the client namespace, for who-uses.
	secret := "trifouilly-api-entreprise"
	create(t, deploymentOf(trif.Name, "marches-publics", restricted(corev1.Container{Name: "app",
		EnvFrom: []corev1.EnvFromSource{{Prefix: "API_ENTREPRISE_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: secret}}}}})))
	create(t, deploymentOf(trif.Name, "site-vitrine", restricted(corev1.Container{Name: "web"})))
	cron := restricted(corev1.Container{Name: "sync",
		Env: []corev1.EnvVar{{Name: "API_TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: "TOKEN"}}}},
		VolumeMounts: []corev1.VolumeMount{{Name: "jeton", MountPath: "/var/run/jeton", ReadOnly: true}}})
	cron.RestartPolicy = corev1.RestartPolicyOnFailure
	cron.Volumes = []corev1.Volume{{Name: "jeton", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}}}}
	create(t, &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Namespace: trif.Name, Name: "synchro-nocturne"},
		Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
			Template: corev1.PodTemplateSpec{Spec: cron}}}}})
	debug := restricted(corev1.Container{Name: "shell", VolumeMounts: []corev1.VolumeMount{{Name: "creds", MountPath: "/creds"}}})
	debug.Volumes = []corev1.Volume{{Name: "creds", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: secret}}}}}}}}
	create(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: trif.Name, Name: "debug"}, Spec: debug})
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `go test ./cmd/kubectl-jeton -run Golden -update` to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (rerun with -update if the change is intended)\n--- got:\n%s\n--- want:\n%s", path, got, want)
	}
}

// The commands' outputs on the golden fleet, against the real operator, byte for byte.
func TestGolden(t *testing.T) {
	goldenFleet(t)

	for format, file := range map[string]string{"table": "inventory.txt", "csv": "inventory.csv", "json": "inventory.json", "markdown": "inventory.md"} {
		r := goldenRun(t, "inventory", "-n", nsGolden, "-o", format)
		wantCode(t, r, exitOK, "inventory -o "+format)
		golden(t, file, r.stdout)
	}

	r := goldenRun(t, "status", "-n", nsGolden)
	wantCode(t, r, exitNeedsAction, "status")
	golden(t, "status.txt", r.stdout)
	// Tokens expiring within 7 days still fail with --fail-within-days 7; only they would not.
	r = goldenRun(t, "status", "-n", nsGolden, "--fail-within-days", "0")
	wantCode(t, r, exitNeedsAction, "status --fail-within-days 0")

	r = goldenRun(t, "who-uses", "-n", "golden-trifouilly", "trifouilly-api-entreprise")
	wantCode(t, r, exitOK, "who-uses")
	golden(t, "who-uses.txt", r.stdout)
	r = goldenRun(t, "who-uses", "-n", "golden-trifouilly", "trifouilly-api-entreprise", "-o", "json")
	wantCode(t, r, exitOK, "who-uses -o json")
	golden(t, "who-uses.json", r.stdout)

	r = goldenRun(t, "inspect-token", "-n", nsGolden, "trifouilly-api-entreprise-token", "token")
	wantCode(t, r, exitOK, "inspect-token")
	golden(t, "inspect-token.txt", r.stdout)
	r = goldenRun(t, "inspect-token", "-n", nsGolden, "bordeciel-demarches-numeriques-token", "-o", "json")
	wantCode(t, r, exitOK, "inspect-token -o json")
	golden(t, "inspect-token-dn.json", r.stdout)
	// An expired token: exit status 1.
	r = goldenRun(t, "inspect-token", "-n", nsGolden, "trifouilly-historique-token")
	wantCode(t, r, exitNeedsAction, "inspect-token (expired)")
	golden(t, "inspect-token-expired.txt", r.stdout)
}
