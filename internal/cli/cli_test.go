package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

var now = time.Date(2030, 1, 15, 12, 0, 0, 0, time.UTC)

func TestDaysLeft(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want int
	}{
		{0, 0}, {23 * time.Hour, 0}, {24 * time.Hour, 1}, {47 * time.Hour, 1},
		{-time.Hour, 0}, {-24 * time.Hour, -1}, {-49 * time.Hour, -2},
	} {
		if got := DaysLeft(now, now.Add(tc.in)); got != tc.want {
			t.Errorf("DaysLeft(now+%v) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func ready(status metav1.ConditionStatus, reason string, gen int64, stalled bool) []metav1.Condition {
	c := []metav1.Condition{{Type: jetonv1alpha1.ConditionReady, Status: status, Reason: reason, Message: "message  for\n" + reason, ObservedGeneration: gen}}
	if stalled {
		c = append(c, metav1.Condition{Type: jetonv1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: reason, ObservedGeneration: gen})
	}
	return c
}

func hab(name string, conds []metav1.Condition, expiresIn *time.Duration) jetonv1alpha1.Habilitation {
	h := jetonv1alpha1.Habilitation{ObjectMeta: metav1.ObjectMeta{Namespace: "creds", Name: name, Generation: 2},
		Spec: jetonv1alpha1.HabilitationSpec{ClientRef: jetonv1alpha1.ClientReference{Name: "c"}, API: jetonv1alpha1.APIEntreprise}}
	h.Status.Conditions = conds
	if expiresIn != nil {
		h.Status.ExpiresAt = &metav1.Time{Time: now.Add(*expiresIn)}
	}
	return h
}

func in(d time.Duration) *time.Duration { return &d }

const dayLen = 24 * time.Hour

func TestStatusSections(t *testing.T) {
	okReady := ready(metav1.ConditionTrue, jetonv1alpha1.ReasonInjected, 2, false)
	tests := []struct {
		name string
		h    jetonv1alpha1.Habilitation
		want Section
		fine bool
	}{
		{"fine", hab("a", okReady, in(200*dayLen)), 0, true},
		{"expiry unknown", hab("a", okReady, nil), 0, true},
		{"expired by the clock, whatever Ready says", hab("a", okReady, in(-time.Minute)), SectionExpired, false},
		{"expired, said the operator", hab("a", ready(metav1.ConditionFalse, jetonv1alpha1.ReasonTokenExpired, 2, true), nil), SectionExpired, false},
		{"expired, not reconciled", hab("a", nil, in(-dayLen)), SectionExpired, false},
		{"never reconciled", hab("a", nil, in(200*dayLen)), SectionNotReconciled, false},
		{"older generation", hab("a", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonInjected, 1, false), nil), SectionNotReconciled, false},
		{"conflict", hab("a", ready(metav1.ConditionFalse, jetonv1alpha1.ReasonTokenConflict, 2, true), nil), SectionConflict, false},
		{"technical token reuse", hab("a", ready(metav1.ConditionFalse, jetonv1alpha1.ReasonTechnicalTokenReuse, 2, true), nil), SectionConflict, false},
		{"stalled", hab("a", ready(metav1.ConditionFalse, jetonv1alpha1.ReasonInvalidToken, 2, true), nil), SectionStalled, false},
		{"scopes missing: stalled though still injected", hab("a", ready(metav1.ConditionFalse, jetonv1alpha1.ReasonScopesMissing, 2, true), in(200*dayLen)), SectionStalled, false},
		{"not ready", hab("a", ready(metav1.ConditionFalse, jetonv1alpha1.ReasonSecretNotFound, 2, false), nil), SectionNotReady, false},
		{"6 days", hab("a", okReady, in(6*dayLen+time.Hour)), SectionExpiring7, false},
		{"7 days", hab("a", okReady, in(7*dayLen+time.Hour)), SectionExpiring30, false},
		{"29 days", hab("a", okReady, in(29*dayLen+time.Hour)), SectionExpiring30, false},
		{"30 days", hab("a", okReady, in(30*dayLen+time.Hour)), SectionExpiring90, false},
		{"89 days", hab("a", okReady, in(89*dayLen+time.Hour)), SectionExpiring90, false},
		{"90 days", hab("a", okReady, in(90*dayLen+time.Hour)), 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := Status(Fleet{Habilitations: []jetonv1alpha1.Habilitation{tc.h}}, now)
			if tc.fine {
				if rep.HabilitationsFine != 1 {
					t.Errorf("not counted as fine: %+v", rep.Sections)
				}
				return
			}
			if len(rep.Sections[tc.want]) != 1 {
				t.Fatalf("not in section %s: %+v", sectionTitles[tc.want], rep.Sections)
			}
			if it := rep.Sections[tc.want][0]; strings.Contains(it.Message, "\n") || strings.Contains(it.Message, "  ") {
				t.Errorf("message not on one line: %q", it.Message)
			}
		})
	}
}

func TestStatusTechnicalTokensAndClients(t *testing.T) {
	tt := func(mutate func(*jetonv1alpha1.TechnicalToken)) jetonv1alpha1.TechnicalToken {
		x := jetonv1alpha1.TechnicalToken{ObjectMeta: metav1.ObjectMeta{Namespace: "creds", Name: "t", Generation: 1},
			Spec: jetonv1alpha1.TechnicalTokenSpec{API: jetonv1alpha1.APIParticulier, FailureThreshold: 3}}
		x.Status.Conditions = ready(metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded, 1, false)
		mutate(&x)
		return x
	}
	failing := func(x *jetonv1alpha1.TechnicalToken) {
		x.Status.ConsecutiveFailures = 1
		x.Status.LastResult = &jetonv1alpha1.ProbeResult{Reason: jetonv1alpha1.ReasonUnauthorized, HTTPStatus: 401, Code: "00101"}
		x.Status.Conditions = ready(metav1.ConditionTrue, jetonv1alpha1.ReasonProbeFailing, 1, false)
	}
	rep := Status(Fleet{
		TechnicalTokens: []jetonv1alpha1.TechnicalToken{
			tt(func(*jetonv1alpha1.TechnicalToken) {}),
			tt(failing),
			tt(func(x *jetonv1alpha1.TechnicalToken) {
				x.Spec.Suspend = true
				x.Status.Conditions = ready(metav1.ConditionUnknown, jetonv1alpha1.ReasonSuspended, 1, false)
			}),
			tt(func(x *jetonv1alpha1.TechnicalToken) {
				failing(x)
				x.Status.Conditions = ready(metav1.ConditionFalse, jetonv1alpha1.ReasonTokenConflict, 1, true)
			}),
		},
		Clients: []jetonv1alpha1.PublicClient{
			{ObjectMeta: metav1.ObjectMeta{Name: "ok", Generation: 1}, Status: jetonv1alpha1.PublicClientStatus{Conditions: ready(metav1.ConditionTrue, jetonv1alpha1.ReasonReady, 1, false)}},
			{ObjectMeta: metav1.ObjectMeta{Name: "squatted", Generation: 1}, Status: jetonv1alpha1.PublicClientStatus{Conditions: ready(metav1.ConditionFalse, jetonv1alpha1.ReasonNamespaceOwnedElsewhere, 1, true)}},
		},
	}, now)
	if rep.TechnicalTokensFine != 1 || rep.TechnicalTokensSuspended != 1 || rep.ClientsReady != 1 {
		t.Errorf("fine %d, suspended %d, clients ready %d; want 1, 1, 1", rep.TechnicalTokensFine, rep.TechnicalTokensSuspended, rep.ClientsReady)
	}
	if f := rep.Sections[SectionFailingProbe]; len(f) != 1 || !strings.Contains(f[0].Detail, "1 failed probe(s) in a row (Ready turns False at 3), last: Unauthorized, HTTP 401, code 00101") {
		t.Errorf("failing probes: %+v", f)
	}
	// A conflict is more urgent than the probe failures it causes.
	if c := rep.Sections[SectionConflict]; len(c) != 1 {
		t.Errorf("conflicts: %+v", c)
	}
	if s := rep.Sections[SectionStalled]; len(s) != 1 || s[0].Kind != KindPublicClient {
		t.Errorf("stalled: %+v", s)
	}
	if n := rep.NeedsAction(30); n != 3 {
		t.Errorf("NeedsAction = %d, want 3", n)
	}
}

func TestNeedsActionThreshold(t *testing.T) {
	okReady := ready(metav1.ConditionTrue, jetonv1alpha1.ReasonInjected, 2, false)
	rep := Status(Fleet{Habilitations: []jetonv1alpha1.Habilitation{
		hab("a", okReady, in(3*dayLen)), hab("b", okReady, in(20*dayLen)), hab("c", okReady, in(60*dayLen)),
	}}, now)
	for within, want := range map[int]int{0: 0, 7: 1, 30: 2, 90: 3} {
		if got := rep.NeedsAction(within); got != want {
			t.Errorf("NeedsAction(%d) = %d, want %d", within, got, want)
		}
	}
}

func TestSecretReferences(t *testing.T) {
	spec := &corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "init", EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}}}}},
		Containers: []corev1.Container{
			{Name: "app", EnvFrom: []corev1.EnvFromSource{
				{Prefix: "API_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}},
				{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "other"}}},
			}, Env: []corev1.EnvVar{
				{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "TOKEN"}}},
				{Name: "PLAIN", Value: "not a reference"},
			}, VolumeMounts: []corev1.VolumeMount{{Name: "v", MountPath: "/a"}, {Name: "v", MountPath: "/b"}}},
			{Name: "side", VolumeMounts: []corev1.VolumeMount{{Name: "v", MountPath: "/c"}}},
		},
		EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug",
			Env: []corev1.EnvVar{{Name: "T", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "BASE_URL"}}}}}}},
		Volumes: []corev1.Volume{
			{Name: "v", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s"}}},
			{Name: "p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{}}, {Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}}}}}},
			{Name: "o", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "other"}}},
		},
	}
	var got []string
	for _, r := range SecretReferences(spec, "s") {
		got = append(got, r.Container+"|"+r.Via+"|"+r.Detail)
	}
	want := []string{
		"|projected|volume p (mounted by no container)",
		"app|env|TOKEN from key TOKEN",
		"app|envFrom|all keys, prefix API_",
		"app|volume|volume v at /a, /b",
		"debug|env|T from key BASE_URL",
		"init|envFrom|all keys",
		"side|volume|volume v at /c",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("references:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if refs := SecretReferences(spec, "nobody"); len(refs) != 0 {
		t.Errorf("references to an unused Secret: %+v", refs)
	}
}

func TestInventoryRows(t *testing.T) {
	h := hab("h", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonInjected, 1, false), in(10*dayLen))
	h.Spec.ClientRef.Name = "gone"
	rows := Inventory(Fleet{Habilitations: []jetonv1alpha1.Habilitation{h}}, now)
	if len(rows) != 1 {
		t.Fatalf("rows: %+v", rows)
	}
	r := rows[0]
	// Status written for generation 1, spec at 2: no Ready to report yet.
	if r.SIRET != "" || r.Ready != "" || r.Reason != "" || *r.DaysLeft != 10 || r.Environment != "production" {
		t.Errorf("row %+v", r)
	}
}

func TestRenderings(t *testing.T) {
	days := 3
	exp := now.Add(3 * dayLen)
	rows := []Row{{Kind: KindHabilitation, Namespace: "creds", Name: "h", Client: "c", API: "APIEntreprise", Environment: "production",
		DatapassID: "a|b", ExpiresAt: &exp, DaysLeft: &days, Ready: "True", Reason: "Injected"}}
	var b bytes.Buffer
	if err := WriteInventory(&b, FormatMarkdown, rows, now); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `| a\|b |`) || !strings.Contains(b.String(), "| 2030-01-18 | 3 | True |") {
		t.Errorf("markdown:\n%s", b.String())
	}
	b.Reset()
	if err := WriteInventory(&b, FormatCSV, rows, now); err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(&b).ReadAll()
	if err != nil || len(records) != 2 || len(records[1]) != len(inventoryColumns) || records[1][11] != "2030-01-18T12:00:00Z" {
		t.Errorf("csv %v: %q", err, records)
	}
	b.Reset()
	if err := WriteInventory(&b, FormatJSON, nil, now); err != nil || !strings.Contains(b.String(), `"items": []`) {
		t.Errorf("json of nothing %v: %s", err, b.String())
	}
	if err := WriteInventory(&b, "yaml", rows, now); err == nil {
		t.Error("yaml accepted")
	}
}

func TestInspect(t *testing.T) {
	key := []byte("test key")
	iat, exp := now.Add(-dayLen), now.Add(40*dayLen)
	jwtTok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"jti": "0b7e5a4c-1d2e-4f60-8a9b-000000000001",
		"scopes": []string{"b_scope", "a_scope"}, "iat": iat.Unix(), "exp": exp.Unix()}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Inspect([]byte("  "+jwtTok+"\n"), "", now)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != "JWT" || got.API != "" || got.TokenID != "0b7e5a4c-1d2e-4f60-8a9b-000000000001" || *got.DaysLeft != 40 ||
		strings.Join(got.Scopes, ",") != "a_scope,b_scope" || len(got.Fingerprint) != 16 {
		t.Errorf("inspection %+v", got)
	}
	var b bytes.Buffer
	if err := WriteInspection(&b, got, "", now); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), jwtTok) || !strings.Contains(b.String(), "(40 days left)") {
		t.Errorf("inspection:\n%s", b.String())
	}

	dn := base64.RawURLEncoding.EncodeToString([]byte("5c4b3a29-1807-4f6e-9d8c-7b6a5f4e3d2c;secretsecretsecret"))
	got, err = Inspect([]byte(dn), "", now)
	if err != nil || got.Kind != string(jetonv1alpha1.DemarchesNumeriques) || got.ExpiresAt != nil {
		t.Errorf("DN inspection %+v, %v", got, err)
	}

	// Errors never quote what they were given.
	for _, bad := range []string{"", "Bearer " + jwtTok, jwtTok + " " + jwtTok, strings.Repeat("x", 9000), "ab.cd.efghijklmnopqrstuvwxyz0123456789"} {
		_, err := Inspect([]byte(bad), "", now)
		if err == nil {
			t.Errorf("Inspect(%.20q) accepted", bad)
			continue
		}
		for _, part := range append(strings.Split(jwtTok, "."), "efghijklmnopqrstuvwxyz0123456789") {
			if len(part) > 8 && strings.Contains(err.Error(), part) {
				t.Errorf("error quotes the input: %v", err)
			}
		}
	}
}
