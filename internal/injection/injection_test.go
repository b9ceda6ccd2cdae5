package injection

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

func habilitation() *jetonv1alpha1.Habilitation {
	return &jetonv1alpha1.Habilitation{
		ObjectMeta: metav1.ObjectMeta{Name: "dgfip", Namespace: "jeton-system"},
		Spec: jetonv1alpha1.HabilitationSpec{
			ClientRef: jetonv1alpha1.ClientReference{Name: "trifouilly"},
			API:       jetonv1alpha1.APIEntreprise,
		},
	}
}

func publicClient() *jetonv1alpha1.PublicClient {
	return &jetonv1alpha1.PublicClient{
		ObjectMeta: metav1.ObjectMeta{Name: "trifouilly"},
		Spec:       jetonv1alpha1.PublicClientSpec{SIRET: "21730001500017", Namespace: "client-trifouilly"},
	}
}

func TestDesiredSecret(t *testing.T) {
	tests := []struct {
		name     string
		target   jetonv1alpha1.Target
		wantName string
		wantKeys [3]string // token, recipient, base URL
	}{
		{"defaults", jetonv1alpha1.Target{}, "dgfip", [3]string{"TOKEN", "RECIPIENT", "BASE_URL"}},
		{"custom name and keys", jetonv1alpha1.Target{SecretName: "api-entreprise", Keys: jetonv1alpha1.TargetKeys{Token: "jwt", Recipient: "siret", BaseURL: "url"}},
			"api-entreprise", [3]string{"jwt", "siret", "url"}},
		{"one key customised", jetonv1alpha1.Target{Keys: jetonv1alpha1.TargetKeys{Token: "API_KEY"}}, "dgfip", [3]string{"API_KEY", "RECIPIENT", "BASE_URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := habilitation()
			h.Spec.Target = tt.target
			s := DesiredSecret(h, publicClient(), "tok", "0123456789abcdef", "https://entreprise.api.gouv.fr")
			if s.Name != tt.wantName || s.Namespace != "client-trifouilly" {
				t.Errorf("secret %s/%s, want client-trifouilly/%s", s.Namespace, s.Name, tt.wantName)
			}
			if s.Type != corev1.SecretTypeOpaque {
				t.Errorf("type %q, want Opaque", s.Type)
			}
			want := map[string]string{tt.wantKeys[0]: "tok", tt.wantKeys[1]: "21730001500017", tt.wantKeys[2]: "https://entreprise.api.gouv.fr"}
			if len(s.Data) != len(want) {
				t.Errorf("data has %d keys, want %d", len(s.Data), len(want))
			}
			for k, v := range want {
				if string(s.Data[k]) != v {
					t.Errorf("data[%s] = %q, want %q", k, s.Data[k], v)
				}
			}
			wantLabels := map[string]string{
				"app.kubernetes.io/managed-by":     "jeton",
				"jeton.dev/client":                 "trifouilly",
				"jeton.dev/habilitation":           "dgfip",
				"jeton.dev/habilitation-namespace": "jeton-system",
			}
			if len(s.Labels) != len(wantLabels) {
				t.Errorf("labels %v, want exactly %v (nothing copied from elsewhere)", s.Labels, wantLabels)
			}
			for k, v := range wantLabels {
				if s.Labels[k] != v {
					t.Errorf("label %s = %q, want %q", k, s.Labels[k], v)
				}
			}
			if s.Annotations["jeton.dev/token-fingerprint"] != "0123456789abcdef" || len(s.Annotations) != 1 {
				t.Errorf("annotations %v, want only the fingerprint", s.Annotations)
			}
			if !ManagedBy(s, h) {
				t.Error("the desired Secret is not recognised as managed by its Habilitation")
			}
		})
	}
}

func TestManagedBy(t *testing.T) {
	h := habilitation()
	own := Labels(h)
	with := func(k, v string) map[string]string {
		l := Labels(h)
		if v == "" {
			delete(l, k)
		} else {
			l[k] = v
		}
		return l
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   bool
	}{
		{"own labels", own, true},
		{"no labels (a user's Secret)", nil, false},
		{"unrelated labels only", map[string]string{"app": "x"}, false},
		{"another habilitation", with(jetonv1alpha1.LabelHabilitation, "other"), false},
		{"same name in another credentials namespace", with(jetonv1alpha1.LabelHabilitationNamespace, "other-ns"), false},
		{"another client", with(jetonv1alpha1.LabelClient, "other-client"), false},
		{"managed by another tool, no jeton label", map[string]string{jetonv1alpha1.LabelManagedBy: "helm"}, false},
		{"habilitation label removed by hand", with(jetonv1alpha1.LabelHabilitation, ""), true},
		{"managed-by removed by hand", with(jetonv1alpha1.LabelManagedBy, ""), true},
		{"only managed-by=jeton left", map[string]string{jetonv1alpha1.LabelManagedBy: jetonv1alpha1.ManagedByValue}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Labels: tt.labels}}
			if got := ManagedBy(s, h); got != tt.want {
				t.Errorf("ManagedBy = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestUpToDate(t *testing.T) {
	desired := DesiredSecret(habilitation(), publicClient(), "tok", "fp1", "https://x")
	tests := []struct {
		name   string
		mutate func(s *corev1.Secret)
		want   bool
	}{
		{"identical", func(*corev1.Secret) {}, true},
		{"extra label and annotation from someone else", func(s *corev1.Secret) {
			s.Labels["team"] = "a"
			s.Annotations["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
		}, true},
		{"token edited by hand", func(s *corev1.Secret) { s.Data["TOKEN"] = []byte("other") }, false},
		{"key removed", func(s *corev1.Secret) { delete(s.Data, "BASE_URL") }, false},
		{"key added (e.g. after a key rename)", func(s *corev1.Secret) { s.Data["OLD_TOKEN"] = []byte("tok") }, false},
		{"label removed", func(s *corev1.Secret) { delete(s.Labels, jetonv1alpha1.LabelClient) }, false},
		{"fingerprint annotation changed", func(s *corev1.Secret) { s.Annotations[jetonv1alpha1.AnnotationTokenFingerprint] = "fp0" }, false},
		{"type changed", func(s *corev1.Secret) { s.Type = corev1.SecretTypeBasicAuth }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			existing := DesiredSecret(habilitation(), publicClient(), "tok", "fp1", "https://x")
			tt.mutate(existing)
			if got := UpToDate(existing, desired); got != tt.want {
				t.Errorf("UpToDate = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReferencesSecret(t *testing.T) {
	const name = "api-entreprise"
	container := func(c corev1.Container) []corev1.Container { return []corev1.Container{{Name: "other"}, c} }
	tests := []struct {
		name string
		spec corev1.PodSpec
		want bool
	}{
		{"nothing", corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}, false},
		{"env secretKeyRef", corev1.PodSpec{Containers: container(corev1.Container{Env: []corev1.EnvVar{
			{Name: "X", Value: "y"},
			{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: "TOKEN"}}},
		}})}, true},
		{"env secretKeyRef to another Secret", corev1.PodSpec{Containers: container(corev1.Container{Env: []corev1.EnvVar{
			{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "other"}, Key: "TOKEN"}}},
		}})}, false},
		{"env configMapKeyRef with the same name", corev1.PodSpec{Containers: container(corev1.Container{Env: []corev1.EnvVar{
			{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: "x"}}},
		}})}, false},
		{"envFrom secretRef", corev1.PodSpec{Containers: container(corev1.Container{EnvFrom: []corev1.EnvFromSource{
			{Prefix: "API_ENTREPRISE_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}},
		}})}, true},
		{"envFrom configMapRef with the same name", corev1.PodSpec{Containers: container(corev1.Container{EnvFrom: []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}},
		}})}, false},
		{"init container env", corev1.PodSpec{InitContainers: []corev1.Container{{Env: []corev1.EnvVar{
			{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: "TOKEN"}}},
		}}}, Containers: []corev1.Container{{Name: "app"}}}, true},
		{"init container envFrom", corev1.PodSpec{InitContainers: []corev1.Container{{EnvFrom: []corev1.EnvFromSource{
			{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}},
		}}}}, true},
		{"secret volume", corev1.PodSpec{Volumes: []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: name}}}}}, true},
		{"secret volume of another Secret", corev1.PodSpec{Volumes: []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "other"}}}}}, false},
		{"projected secret source", corev1.PodSpec{Volumes: []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: name}}},
		}}}}}}, true},
		{"projected configMap with the same name", corev1.PodSpec{Volumes: []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: name}}},
		}}}}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ReferencesSecret(&tt.spec, name); got != tt.want {
				t.Errorf("ReferencesSecret = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRestartedFor(t *testing.T) {
	tests := []struct {
		name, current, secret, fp, want string
	}{
		{"first entry", "", "b", "fp2", "b=fp2"},
		{"update own entry", "b=fp1", "b", "fp2", "b=fp2"},
		{"idempotent", "b=fp2", "b", "fp2", "b=fp2"},
		{"keep others, sorted", "c=x,a=y", "b", "fp2", "a=y,b=fp2,c=x"},
		{"update among others", "a=y,b=fp1,c=x", "b", "fp2", "a=y,b=fp2,c=x"},
		{"unsorted input is normalised", "c=x,b=fp1", "b", "fp2", "b=fp2,c=x"},
		{"garbage entries dropped", "junk,,=z, a=y ", "b", "fp2", "a=y,b=fp2"},
		// The annotation is the tenant's to write: what jeton never writes is dropped, and a
		// huge value cannot grow what jeton keeps per workload during a rotation.
		{"entries not shaped like jeton's dropped", "A_B=x,a=" + strings.Repeat("y", 65) + ",c=x y", "b", "fp2", "b=fp2"},
		{"at most 16 entries kept", strings.Repeat("a=1,", 100000) + "z=2", "b", "fp2", "a=1,b=fp2"},
		{"16 distinct entries, the rotated one always set", "a0=1,a1=1,a2=1,a3=1,a4=1,a5=1,a6=1,a7=1,a8=1,a9=1,b0=1,b1=1,b2=1,b3=1,b4=1,b5=1,b6=1", "zz", "fp2",
			"a0=1,a1=1,a2=1,a3=1,a4=1,a5=1,a6=1,a7=1,a8=1,a9=1,b0=1,b1=1,b2=1,b3=1,b4=1,b5=1,zz=fp2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RestartedFor(tt.current, tt.secret, tt.fp); got != tt.want {
				t.Errorf("RestartedFor(%q, %q, %q) = %q, want %q", tt.current, tt.secret, tt.fp, got, tt.want)
			}
			// Applying the result again must not change it: no restart on resync.
			if got := RestartedFor(tt.want, tt.secret, tt.fp); got != tt.want {
				t.Errorf("not idempotent: %q then %q", tt.want, got)
			}
		})
	}
}

func TestRestartFor(t *testing.T) {
	envFrom := func(names ...string) corev1.PodSpec {
		c := corev1.Container{Name: "app"}
		for _, n := range names {
			c.EnvFrom = append(c.EnvFrom, corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: n}}})
		}
		return corev1.PodSpec{Containers: []corev1.Container{c}}
	}
	tests := []struct {
		name     string
		current  string
		spec     corev1.PodSpec
		rotated  map[string]string
		wantNext string
		wantUses []string
	}{
		{"uses none: unchanged", "a=old", envFrom("smtp"), map[string]string{"a": "new"}, "a=old", nil},
		{"uses one of several rotated", "", envFrom("b"), map[string]string{"a": "fa", "b": "fb", "c": "fc"}, "b=fb", []string{"b"}},
		{"uses several: one value for all", "", envFrom("c", "a"), map[string]string{"a": "fa", "b": "fb", "c": "fc"}, "a=fa,c=fc", []string{"a", "c"}},
		{"entries of Secrets not rotated now are kept", "z=fz,a=old", envFrom("a", "z"), map[string]string{"a": "fa"}, "a=fa,z=fz", []string{"a"}},
		{"already restarted for them: unchanged", "a=fa,c=fc", envFrom("a", "c"), map[string]string{"a": "fa", "c": "fc"}, "a=fa,c=fc", []string{"a", "c"}},
		{"nothing rotated", "a=fa", envFrom("a"), nil, "a=fa", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, uses := RestartFor(tt.current, &tt.spec, tt.rotated)
			if next != tt.wantNext || !slices.Equal(uses, tt.wantUses) {
				t.Errorf("RestartFor(%q, %v) = %q, %v; want %q, %v", tt.current, tt.rotated, next, uses, tt.wantNext, tt.wantUses)
			}
			// Once restarted, the same rotations restart nothing more.
			if again, _ := RestartFor(next, &tt.spec, tt.rotated); again != next {
				t.Errorf("not idempotent: %q then %q", next, again)
			}
		})
	}
}

func TestArbitrate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	hab := func(ns, name, client string, age int) Binding {
		return Binding{Kind: KindHabilitation, Namespace: ns, Name: name, Client: client, Created: t0.Add(time.Duration(age) * time.Minute)}
	}
	tt := func(name string, age int) Binding {
		return Binding{Kind: KindTechnicalToken, Namespace: "jeton-system", Name: name, Created: t0.Add(time.Duration(age) * time.Minute)}
	}
	tests := []struct {
		name   string
		self   Binding
		others []Binding
		want   Verdict
	}{
		{"alone", hab("ns", "a", "x", 1), nil, Verdict{Outcome: Allowed}},
		{"newer of two clients is refused", hab("ns", "b", "y", 2), []Binding{hab("ns", "a", "x", 1)},
			Verdict{Outcome: TokenConflict, With: hab("ns", "a", "x", 1)}},
		{"older of two clients keeps working", hab("ns", "a", "x", 1), []Binding{hab("ns", "b", "y", 2)}, Verdict{Outcome: Allowed}},
		{"same second, two clients: refused (the smaller name)", hab("ns", "a", "x", 1), []Binding{hab("ns", "b", "y", 1)},
			Verdict{Outcome: TokenConflict, With: hab("ns", "b", "y", 1)}},
		{"same second, two clients: refused (the larger name)", hab("ns", "b", "y", 1), []Binding{hab("ns", "a", "x", 1)},
			Verdict{Outcome: TokenConflict, With: hab("ns", "a", "x", 1)}},
		{"same second, two clients, other namespaces: refused", hab("ns2", "a", "y", 1), []Binding{hab("ns1", "a", "x", 1)},
			Verdict{Outcome: TokenConflict, With: hab("ns1", "a", "x", 1)}},
		{"same second, same client: allowed", hab("ns", "b", "x", 1), []Binding{hab("ns", "a", "x", 1)}, Verdict{Outcome: Allowed}},
		{"a third client later is refused against the tie", hab("ns", "c", "z", 2), []Binding{hab("ns", "a", "x", 1), hab("ns", "b", "y", 1)},
			Verdict{Outcome: TokenConflict, With: hab("ns", "a", "x", 1)}},
		{"a later Habilitation of a tied client is refused too", hab("ns", "c", "x", 2), []Binding{hab("ns", "a", "x", 1), hab("ns", "b", "y", 1)},
			Verdict{Outcome: TokenConflict, With: hab("ns", "b", "y", 1)}},
		{"same client twice is allowed", hab("ns", "b", "x", 2), []Binding{hab("ns", "a", "x", 1)}, Verdict{Outcome: Allowed}},
		{"owner decided by the oldest binding, not by a refused one", hab("ns", "c", "x", 3), []Binding{hab("ns", "a", "x", 1), hab("ns", "b", "y", 2)},
			Verdict{Outcome: Allowed}},
		{"third client refused against the owner", hab("ns", "c", "z", 3), []Binding{hab("ns", "b", "y", 2), hab("ns", "a", "x", 1)},
			Verdict{Outcome: TokenConflict, With: hab("ns", "a", "x", 1)}},
		{"older technical token refuses a Habilitation", hab("ns", "a", "x", 5), []Binding{tt("probe", 1)},
			Verdict{Outcome: TechnicalTokenReuse, With: tt("probe", 1)}},
		{"newer technical token does not refuse the Habilitation", hab("ns", "a", "x", 1), []Binding{tt("probe", 5)},
			Verdict{Outcome: Allowed}},
		{"technical token older than a conflict is what is reported", hab("ns", "b", "y", 3), []Binding{hab("ns", "a", "x", 2), tt("probe", 1)},
			Verdict{Outcome: TechnicalTokenReuse, With: tt("probe", 1)}},
		{"a technical token between two habilitations of one client", hab("ns", "b", "x", 3), []Binding{hab("ns", "a", "x", 1), tt("probe", 2)},
			Verdict{Outcome: Allowed}},
		{"oldest technical token named", hab("ns", "a", "x", 9), []Binding{tt("p2", 6), tt("p1", 5)},
			Verdict{Outcome: TechnicalTokenReuse, With: tt("p1", 5)}},
		{"same second as a technical token: refused (fail closed)", hab("ns", "a", "x", 1), []Binding{tt("z", 1)},
			Verdict{Outcome: TechnicalTokenReuse, With: tt("z", 1)}},
		{"technical token in the same second as the owner refuses a newer one of that client", hab("ns", "b", "x", 3), []Binding{hab("ns", "a", "x", 1), tt("z", 1)},
			Verdict{Outcome: TechnicalTokenReuse, With: tt("z", 1)}},

		{"technical token alone is probed", tt("probe", 1), nil, Verdict{Outcome: Allowed}},
		{"technical token naming a client's older token is refused", tt("probe", 5), []Binding{hab("ns", "b", "y", 3), hab("ns", "a", "x", 2)},
			Verdict{Outcome: TokenConflict, With: hab("ns", "a", "x", 2)}},
		{"technical token older than the Habilitation is probed", tt("probe", 1), []Binding{hab("ns", "a", "x", 2)}, Verdict{Outcome: Allowed}},
		{"technical tokens sharing a token do not conflict", tt("p2", 5), []Binding{tt("p1", 1)}, Verdict{Outcome: Allowed}},
		{"same second as a Habilitation: refused too (fail closed)", tt("a", 1), []Binding{hab("ns", "z", "x", 1)},
			Verdict{Outcome: TokenConflict, With: hab("ns", "z", "x", 1)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Arbitrate(tc.self, tc.others); got != tc.want {
				t.Errorf("Arbitrate = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSlim(t *testing.T) {
	huge := strings.Repeat("x", 900<<10)
	forged := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: "forged", Namespace: "elsewhere", UID: "u1", ResourceVersion: "7",
			Labels: map[string]string{
				jetonv1alpha1.LabelManagedBy:    jetonv1alpha1.ManagedByValue,
				jetonv1alpha1.LabelHabilitation: "h",
				"padding":                       strings.Repeat("p", 63),
			},
			Annotations: map[string]string{
				jetonv1alpha1.AnnotationTokenFingerprint: huge,
				"other":                                  huge,
			},
			OwnerReferences: []metav1.OwnerReference{{Name: huge}},
			Finalizers:      []string{"x"},
		},
		Type: corev1.SecretType(huge),
		Data: map[string][]byte{"a": []byte(huge), "b": []byte(huge)},
	}
	slim := Slim(forged)
	if slim.Name != "forged" || slim.Namespace != "elsewhere" || slim.UID != "u1" || slim.ResourceVersion != "7" {
		t.Errorf("identity lost: %+v", slim.ObjectMeta)
	}
	if want := map[string]string{jetonv1alpha1.LabelManagedBy: jetonv1alpha1.ManagedByValue, jetonv1alpha1.LabelHabilitation: "h"}; !maps.Equal(slim.Labels, want) {
		t.Errorf("labels = %v, want only jeton's %v", slim.Labels, want)
	}
	if slim.Annotations != nil || slim.OwnerReferences != nil || slim.Finalizers != nil || slim.Type != "" {
		t.Errorf("unbounded fields kept: annotations %d, ownerRefs %d, finalizers %d, type %d bytes",
			len(slim.Annotations), len(slim.OwnerReferences), len(slim.Finalizers), len(slim.Type))
	}
	size := 0
	for k, v := range slim.Data {
		size += len(k) + len(v)
	}
	if size > 64 {
		t.Errorf("slim data is %d bytes, want a digest only", size)
	}
}

func TestUpToDateDigestForm(t *testing.T) {
	h := &jetonv1alpha1.Habilitation{ObjectMeta: metav1.ObjectMeta{Name: "h", Namespace: "creds"},
		Spec: jetonv1alpha1.HabilitationSpec{ClientRef: jetonv1alpha1.ClientReference{Name: "c"}}}
	c := &jetonv1alpha1.PublicClient{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: jetonv1alpha1.PublicClientSpec{SIRET: "13002526500013"}}
	desired := DesiredSecret(h, c, "tok", "fp", "https://entreprise.api.gouv.fr")
	tests := []struct {
		name string
		edit func(*corev1.Secret)
		want bool
	}{
		{"as written", func(*corev1.Secret) {}, true},
		{"value edited", func(s *corev1.Secret) { s.Data["TOKEN"] = []byte("other") }, false},
		{"key added", func(s *corev1.Secret) { s.Data["EXTRA"] = []byte("x") }, false},
		{"key removed", func(s *corev1.Secret) { delete(s.Data, "RECIPIENT") }, false},
		{"fingerprint annotation forged", func(s *corev1.Secret) { s.Annotations[jetonv1alpha1.AnnotationTokenFingerprint] = "0000000000000000" }, false},
		{"a real key that looks like the digest key cannot exist", func(s *corev1.Secret) {}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := desired.DeepCopy()
			tt.edit(s)
			if got := UpToDate(Slim(s), desired); got != tt.want {
				t.Errorf("UpToDate(Slim(secret)) = %v, want %v", got, tt.want)
			}
			// The informer's initial list may transform an object twice.
			if got := UpToDate(Slim(Slim(s)), desired); got != tt.want {
				t.Errorf("UpToDate(Slim(Slim(secret))) = %v, want %v", got, tt.want)
			}
			if got := UpToDate(s, desired); got != tt.want {
				t.Errorf("UpToDate(secret) = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestWorkloadListBoundedInBytes: the Restarted event's list of workloads stays within its
// byte budget whatever the tenant's names (up to 253 characters) and count, and says how
// many it left out, so that the event note stays under the API's 1 KB.
func TestWorkloadListBoundedInBytes(t *testing.T) {
	long := func(i int) string { return fmt.Sprintf("Deployment/%03d-%s", i, strings.Repeat("x", 249)) }
	tests := []struct {
		name      string
		names     []string
		want      string // exact, when set
		wantCount int    // how many named (the rest counted)
	}{
		{name: "none", names: nil, want: ""},
		{name: "few short names: all named", names: []string{"Deployment/a", "StatefulSet/b"}, want: "Deployment/a, StatefulSet/b"},
		{name: "one long name: elided", names: []string{long(1)}, wantCount: 1},
		{name: "ten names of 253 characters", names: func() (n []string) {
			for i := range 10 {
				n = append(n, long(i))
			}
			return n
		}(), wantCount: 4},
		{name: "a thousand short names", names: func() (n []string) {
			for i := range 1000 {
				n = append(n, fmt.Sprintf("Deployment/app-%04d", i))
			}
			return n
		}(), wantCount: maxListedWorkloads},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := WorkloadList(tt.names)
			if len(got) > maxWorkloadListBytes {
				t.Errorf("WorkloadList: %d bytes, want at most %d", len(got), maxWorkloadListBytes)
			}
			if tt.want != "" || len(tt.names) == 0 {
				if got != tt.want {
					t.Errorf("WorkloadList = %q, want %q", got, tt.want)
				}
				return
			}
			named := strings.Count(got, ", ") + 1
			if named != tt.wantCount {
				t.Errorf("WorkloadList named %d workloads, want %d: %q", named, tt.wantCount, got)
			}
			if left := len(tt.names) - named; left > 0 && !strings.HasSuffix(got, fmt.Sprintf(" and %d more", left)) {
				t.Errorf("WorkloadList = %q, want it to end with \" and %d more\"", got, left)
			}
			// The whole note the Habilitation reconciler builds, with the longest namespace
			// and Secret names, stays under the API's 1 KB.
			note := fmt.Sprintf("Restarted %d workload(s) in namespace %s using Secret %s for the new token: %s.",
				len(tt.names), strings.Repeat("n", 63), strings.Repeat("s", 253), got)
			if len(note) > 1024 {
				t.Errorf("the Restarted note is %d bytes, over the API's 1024", len(note))
			}
		})
	}
}
