package isolation

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

func TestNamespaceLabels(t *testing.T) {
	tests := []struct {
		level jetonv1alpha1.PodSecurityLevel
		want  string
	}{
		{jetonv1alpha1.PodSecurityRestricted, "restricted"},
		{jetonv1alpha1.PodSecurityBaseline, "baseline"},
		{jetonv1alpha1.PodSecurityPrivileged, "privileged"},
		{"", "restricted"}, // a CRD without defaults must not weaken isolation
	}
	for _, tt := range tests {
		t.Run(string(tt.level), func(t *testing.T) {
			want := map[string]string{
				"jeton.dev/client":                           "mairie",
				"app.kubernetes.io/managed-by":               "jeton",
				"pod-security.kubernetes.io/enforce":         tt.want,
				"pod-security.kubernetes.io/enforce-version": "latest",
				"pod-security.kubernetes.io/audit":           tt.want,
				"pod-security.kubernetes.io/audit-version":   "latest",
				"pod-security.kubernetes.io/warn":            tt.want,
				"pod-security.kubernetes.io/warn-version":    "latest",
			}
			if got := NamespaceLabels("mairie", tt.level); !maps.Equal(got, want) {
				t.Errorf("NamespaceLabels = %v, want %v", got, want)
			}
			ns := Namespace("ns-mairie", "mairie", tt.level)
			if *ns.Name != "ns-mairie" || !maps.Equal(ns.Labels, want) {
				t.Errorf("Namespace = %s %v, want ns-mairie with %v", *ns.Name, ns.Labels, want)
			}
			// The apply configuration must carry nothing but labels, or applying it would
			// claim fields others own.
			if ns.Spec != nil || ns.Annotations != nil {
				t.Errorf("Namespace apply configuration sets more than labels: %+v", ns)
			}
		})
	}
}

// networkPolicy converts the apply configuration to the typed object, as the API server sees it.
func networkPolicy(t *testing.T, namespace, client string) *networkingv1.NetworkPolicy {
	t.Helper()
	raw, err := json.Marshal(NetworkPolicy(namespace, client))
	if err != nil {
		t.Fatal(err)
	}
	var np networkingv1.NetworkPolicy
	if err := json.Unmarshal(raw, &np); err != nil {
		t.Fatal(err)
	}
	return &np
}

// admits reports whether the policy of namespace policyNS admits ingress from a pod in a
// namespace named fromNS with labels nsLabels, evaluating the rules as a CNI plugin would.
func admits(t *testing.T, np *networkingv1.NetworkPolicy, fromNS string, nsLabels map[string]string) bool {
	t.Helper()
	for _, rule := range np.Spec.Ingress {
		for _, peer := range rule.From {
			switch {
			case peer.NamespaceSelector != nil:
				sel, err := metav1.LabelSelectorAsSelector(peer.NamespaceSelector)
				if err != nil {
					t.Fatal(err)
				}
				podsMatch := peer.PodSelector == nil || len(peer.PodSelector.MatchLabels)+len(peer.PodSelector.MatchExpressions) == 0
				if sel.Matches(labels.Set(nsLabels)) && podsMatch {
					return true
				}
			case peer.PodSelector != nil:
				// A podSelector alone selects pods of the policy's own namespace.
				if fromNS == np.Namespace && len(peer.PodSelector.MatchLabels)+len(peer.PodSelector.MatchExpressions) == 0 {
					return true
				}
			}
		}
	}
	return false
}

func TestNetworkPolicy(t *testing.T) {
	np := networkPolicy(t, "ns-a", "a")
	if np.Name != NetworkPolicyName || np.Namespace != "ns-a" {
		t.Errorf("policy is %s/%s, want ns-a/%s", np.Namespace, np.Name, NetworkPolicyName)
	}
	if !maps.Equal(np.Labels, map[string]string{"jeton.dev/client": "a", "app.kubernetes.io/managed-by": "jeton"}) {
		t.Errorf("labels = %v", np.Labels)
	}
	if len(np.Spec.PodSelector.MatchLabels)+len(np.Spec.PodSelector.MatchExpressions) != 0 {
		t.Errorf("podSelector %v does not select every pod", np.Spec.PodSelector)
	}
	if len(np.Spec.PolicyTypes) != 1 || np.Spec.PolicyTypes[0] != networkingv1.PolicyTypeIngress {
		t.Errorf("policyTypes = %v, want [Ingress]", np.Spec.PolicyTypes)
	}

	tests := []struct {
		name     string
		fromNS   string
		nsLabels map[string]string
		want     bool
	}{
		{"same namespace", "ns-a", NamespaceLabels("a", "restricted"), true},
		{"another client's namespace", "ns-b", NamespaceLabels("b", "restricted"), false},
		{"a namespace labelled for this client elsewhere", "ns-a2", map[string]string{"jeton.dev/client": "a"}, false},
		{"ingress controller namespace", "ingress-nginx", map[string]string{"kubernetes.io/metadata.name": "ingress-nginx"}, true},
		{"unlabelled namespace", "monitoring", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := admits(t, np, tt.fromNS, tt.nsLabels); got != tt.want {
				t.Errorf("admits ingress from %s = %v, want %v", tt.fromNS, got, tt.want)
			}
		})
	}
}

func publicClient(name, namespace string, created time.Time, deleting bool) jetonv1alpha1.PublicClient {
	c := jetonv1alpha1.PublicClient{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created)},
		Spec:       jetonv1alpha1.PublicClientSpec{Namespace: namespace},
	}
	if deleting {
		c.DeletionTimestamp = &metav1.Time{Time: created.Add(time.Hour)}
	}
	return c
}

func TestDecide(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	key := []byte("0123456789abcdef0123456789abcdef")
	me := publicClient("mairie", "shared", t0, false)
	me.UID = "client-uid-1"
	now := metav1.NewTime(t0)
	ns := func(lbls map[string]string, deleting bool) *corev1.Namespace {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shared", UID: "ns-uid-1", Labels: lbls}}
		if deleting {
			n.DeletionTimestamp = &now
		}
		return n
	}
	ours := map[string]string{"jeton.dev/client": "mairie", "team": "x"}
	withProof := func(n *corev1.Namespace, proof string) *corev1.Namespace {
		n.Annotations = map[string]string{jetonv1alpha1.AnnotationOwnerProof: proof}
		return n
	}
	recorded := func(uid types.UID, origin jetonv1alpha1.NamespaceOrigin) func(*jetonv1alpha1.PublicClient) {
		return func(c *jetonv1alpha1.PublicClient) {
			c.Status.Namespace, c.Status.NamespaceUID, c.Status.NamespaceOrigin = "shared", uid, origin
		}
	}
	legacyStatus := func(c *jetonv1alpha1.PublicClient) { c.Status.Namespace = "shared" }
	adopt := func(c *jetonv1alpha1.PublicClient) { c.Spec.AdoptNamespace = true }
	otherUID := func(c *jetonv1alpha1.PublicClient) { c.UID = "client-uid-2" }

	tests := []struct {
		name        string
		client      []func(*jetonv1alpha1.PublicClient)
		ns          *corev1.Namespace
		claimants   []jetonv1alpha1.PublicClient
		want        Verdict
		wantOrigin  jetonv1alpha1.NamespaceOrigin
		wantMessage []string // substrings the message must hold
	}{
		{"absent, sole claimant", nil, nil, nil, Create, "", nil},
		{"absent, claimants include me", nil, nil, []jetonv1alpha1.PublicClient{me}, Create, "", nil},
		{"absent, younger rival", nil, nil, []jetonv1alpha1.PublicClient{me, publicClient("region", "shared", t0.Add(time.Second), false)}, Create, "", nil},
		{"absent, older rival", nil, nil, []jetonv1alpha1.PublicClient{me, publicClient("region", "shared", t0.Add(-time.Second), false)}, OwnedElsewhere, "", []string{`"region"`, "spec.namespace"}},
		{"absent, same age rival with smaller name", nil, nil, []jetonv1alpha1.PublicClient{publicClient("agence", "shared", t0, false)}, OwnedElsewhere, "", []string{`"agence"`}},
		{"absent, same age rival with larger name", nil, nil, []jetonv1alpha1.PublicClient{publicClient("zoo", "shared", t0, false)}, Create, "", nil},
		{"absent, older rival being deleted", nil, nil, []jetonv1alpha1.PublicClient{publicClient("region", "shared", t0.Add(-time.Hour), true)}, Create, "", nil},

		{"recorded namespace, same UID", []func(*jetonv1alpha1.PublicClient){recorded("ns-uid-1", jetonv1alpha1.NamespaceCreated)}, ns(ours, false), nil, Owned, jetonv1alpha1.NamespaceCreated, nil},
		{"recorded adopted namespace, same UID", []func(*jetonv1alpha1.PublicClient){recorded("ns-uid-1", jetonv1alpha1.NamespaceAdopted)}, ns(ours, false), nil, Owned, jetonv1alpha1.NamespaceAdopted, nil},
		{"recorded namespace, older rival", []func(*jetonv1alpha1.PublicClient){recorded("ns-uid-1", jetonv1alpha1.NamespaceCreated)}, ns(ours, false), []jetonv1alpha1.PublicClient{publicClient("region", "shared", t0.Add(-time.Hour), false)}, Owned, jetonv1alpha1.NamespaceCreated, nil},
		{"recorded namespace re-created by someone else, labelled for me", []func(*jetonv1alpha1.PublicClient){recorded("ns-uid-0", jetonv1alpha1.NamespaceCreated)}, ns(ours, false), nil, OwnedElsewhere, "", []string{"created again by someone else", "spec.adoptNamespace"}},
		{"recorded namespace re-created with a copied creation proof", []func(*jetonv1alpha1.PublicClient){recorded("ns-uid-0", jetonv1alpha1.NamespaceCreated)}, withProof(ns(ours, false), CreatedProof(key, "shared", "mairie", "client-uid-1", "")), nil, OwnedElsewhere, "", nil},
		{"lost namespace (status keeps its UID) re-created with a copied creation proof", []func(*jetonv1alpha1.PublicClient){recorded("ns-uid-0", jetonv1alpha1.NamespaceCreated), func(c *jetonv1alpha1.PublicClient) { c.Status.Namespace = "" }}, withProof(ns(ours, false), CreatedProof(key, "shared", "mairie", "client-uid-1", "")), nil, OwnedElsewhere, "", nil},
		{"lost namespace created again by jeton, status write lost", []func(*jetonv1alpha1.PublicClient){recorded("ns-uid-0", jetonv1alpha1.NamespaceCreated)}, withProof(ns(ours, false), CreatedProof(key, "shared", "mairie", "client-uid-1", "ns-uid-0")), nil, Owned, jetonv1alpha1.NamespaceCreated, nil},
		{"lost adopted namespace: a labelled look-alike is not adopted again", []func(*jetonv1alpha1.PublicClient){recorded("ns-uid-0", jetonv1alpha1.NamespaceAdopted), adopt}, ns(ours, false), nil, OwnedElsewhere, "", []string{"re-create this PublicClient"}},
		{"terminating", []func(*jetonv1alpha1.PublicClient){recorded("ns-uid-1", jetonv1alpha1.NamespaceCreated)}, ns(ours, true), nil, Terminating, "", []string{"being deleted"}},

		{"labelled for me but nothing proves it (pre-created)", nil, ns(ours, false), nil, OwnedElsewhere, "", []string{"did not create it", "spec.adoptNamespace: true"}},
		{"creation proof for this client (status lost)", nil, withProof(ns(ours, false), CreatedProof(key, "shared", "mairie", "client-uid-1", "")), nil, Owned, jetonv1alpha1.NamespaceCreated, nil},
		{"creation proof of an earlier client of the same name", []func(*jetonv1alpha1.PublicClient){otherUID}, withProof(ns(ours, false), CreatedProof(key, "shared", "mairie", "client-uid-1", "")), nil, OwnedElsewhere, "", nil},
		{"retention proof of this very namespace (client re-created)", []func(*jetonv1alpha1.PublicClient){otherUID}, withProof(ns(ours, false), RetainedProof(key, "shared", "mairie", "ns-uid-1")), nil, Owned, jetonv1alpha1.NamespaceCreated, nil},
		{"retention proof copied onto a look-alike namespace", nil, withProof(ns(ours, false), RetainedProof(key, "shared", "mairie", "ns-uid-0")), nil, OwnedElsewhere, "", nil},
		{"retention proof for another client", nil, withProof(ns(ours, false), RetainedProof(key, "shared", "region", "ns-uid-1")), nil, OwnedElsewhere, "", nil},
		{"proof made with another key", nil, withProof(ns(ours, false), CreatedProof([]byte("other key"), "shared", "mairie", "client-uid-1", "")), nil, OwnedElsewhere, "", nil},
		{"status from a jeton without UIDs (upgrade)", []func(*jetonv1alpha1.PublicClient){legacyStatus}, ns(ours, false), nil, Owned, jetonv1alpha1.NamespaceAdopted, nil},
		{"status from a jeton without UIDs, label removed", []func(*jetonv1alpha1.PublicClient){legacyStatus}, ns(nil, false), nil, OwnedElsewhere, "", nil},

		{"unlabelled", nil, ns(map[string]string{"team": "x"}, false), nil, OwnedElsewhere, "", []string{"spec.adoptNamespace: true", "spec.namespace"}},
		{"unlabelled, adoption requested: the namespace has not agreed", []func(*jetonv1alpha1.PublicClient){adopt}, ns(map[string]string{"team": "x"}, false), nil, OwnedElsewhere, "", []string{"its administrator must agree", "jeton.dev/client=mairie"}},
		{"labelled for me, adoption requested", []func(*jetonv1alpha1.PublicClient){adopt}, ns(ours, false), nil, Owned, jetonv1alpha1.NamespaceAdopted, nil},
		{"unlabelled, terminating", nil, ns(nil, true), nil, Terminating, "", []string{"being deleted"}},
		{"labelled for another client", nil, ns(map[string]string{"jeton.dev/client": "region"}, false), nil, OwnedElsewhere, "", []string{`"region"`, "spec.namespace"}},
		{"labelled for another client, adoption requested", []func(*jetonv1alpha1.PublicClient){adopt}, ns(map[string]string{"jeton.dev/client": "region"}, false), nil, OwnedElsewhere, "", []string{`"region"`}},
		{"labelled for another client, terminating", nil, ns(map[string]string{"jeton.dev/client": "region"}, true), nil, OwnedElsewhere, "", []string{`"region"`}},
		{"label with empty value", nil, ns(map[string]string{"jeton.dev/client": ""}, false), nil, OwnedElsewhere, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := me.DeepCopy()
			for _, f := range tt.client {
				f(c)
			}
			got := Decide(c, tt.ns, tt.claimants, key)
			if got.Verdict != tt.want || got.Origin != tt.wantOrigin {
				t.Fatalf("Decide = %v/%q (%s), want %v/%q", got.Verdict, got.Origin, got.Message, tt.want, tt.wantOrigin)
			}
			for _, s := range tt.wantMessage {
				if !strings.Contains(got.Message, s) {
					t.Errorf("message %q does not mention %q", got.Message, s)
				}
			}
			if strings.Contains(got.Message, "relabel") {
				t.Errorf("message %q suggests relabelling a namespace another client owns", got.Message)
			}
		})
	}
}

func TestFirstClaimant(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		claimants []jetonv1alpha1.PublicClient
		want      string
	}{
		{"one", []jetonv1alpha1.PublicClient{publicClient("a", "", t0, false)}, "a"},
		{"oldest wins", []jetonv1alpha1.PublicClient{publicClient("a", "", t0, false), publicClient("b", "", t0.Add(-time.Second), false)}, "b"},
		{"tie broken by name", []jetonv1alpha1.PublicClient{publicClient("b", "", t0, false), publicClient("a", "", t0, false)}, "a"},
		{"deleting clients step aside", []jetonv1alpha1.PublicClient{publicClient("a", "", t0, true), publicClient("b", "", t0.Add(time.Hour), false)}, "b"},
		{"all deleting", []jetonv1alpha1.PublicClient{publicClient("b", "", t0, true), publicClient("a", "", t0.Add(time.Hour), true)}, "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FirstClaimant(tt.claimants); got.Name != tt.want {
				t.Errorf("FirstClaimant = %s, want %s", got.Name, tt.want)
			}
		})
	}
}

func TestUpToDate(t *testing.T) {
	labels := NamespaceLabels("trifouilly", jetonv1alpha1.PodSecurityRestricted)
	withExtra := maps.Clone(labels)
	withExtra["team"] = "payments"
	baseline := maps.Clone(labels)
	baseline["pod-security.kubernetes.io/enforce"] = "baseline"
	missing := maps.Clone(labels)
	delete(missing, "pod-security.kubernetes.io/warn")
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   bool
	}{
		{"exactly jeton's labels", labels, true},
		{"labels others added are fine", withExtra, true},
		{"a PSA level changed by hand", baseline, false},
		{"a label removed by hand", missing, false},
		{"no labels", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "trifouilly", Labels: tc.labels}}
			if got := UpToDate(ns, "trifouilly", jetonv1alpha1.PodSecurityRestricted); got != tc.want {
				t.Errorf("UpToDate = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNetworkPolicyUpToDate(t *testing.T) {
	// What the API server returns for the applied policy: the apply configuration, typed.
	desired := func() *networkingv1.NetworkPolicy {
		ac := NetworkPolicy("trifouilly", "trifouilly")
		np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: *ac.Name, Namespace: *ac.Namespace, Labels: ac.Labels}}
		b, err := json.Marshal(ac.Spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &np.Spec); err != nil {
			t.Fatal(err)
		}
		return np
	}
	widened := desired()
	widened.Spec.Ingress = append(widened.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{})
	unlabelled := desired()
	delete(unlabelled.Labels, jetonv1alpha1.LabelClient)
	otherClient := desired()
	forged := desired()
	forged.Spec.Ingress = append(forged.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{})
	forged.Annotations = SlimNetworkPolicy(desired()).Annotations
	for _, tc := range []struct {
		name   string
		np     *networkingv1.NetworkPolicy
		client string
		want   bool
	}{
		{"as applied", desired(), "trifouilly", true},
		{"an ingress rule added by hand (admits everyone)", widened, "trifouilly", false},
		{"jeton's label removed", unlabelled, "trifouilly", false},
		{"another client's labels", otherClient, "bordeciel", false},
		// The cache holds the slim form: the same answers from the digest.
		{"as applied, slim", SlimNetworkPolicy(desired()), "trifouilly", true},
		{"an ingress rule added by hand, slim", SlimNetworkPolicy(widened), "trifouilly", false},
		{"jeton's label removed, slim", SlimNetworkPolicy(unlabelled), "trifouilly", false},
		{"another client's labels, slim", SlimNetworkPolicy(otherClient), "bordeciel", false},
		{"widened with the annotation of the desired policy copied onto it", forged, "trifouilly", false},
		{"widened, with that annotation, slim", SlimNetworkPolicy(forged), "trifouilly", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NetworkPolicyUpToDate(tc.np, tc.client); got != tc.want {
				t.Errorf("NetworkPolicyUpToDate = %v, want %v", got, tc.want)
			}
			// The informer's initial list may transform an object twice.
			if got := NetworkPolicyUpToDate(SlimNetworkPolicy(SlimNetworkPolicy(tc.np)), tc.client); got != tc.want {
				t.Errorf("NetworkPolicyUpToDate(slimmed twice) = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSlimNamespaceKeepsWhatJetonReads(t *testing.T) {
	ns := &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{
			Name: "trifouilly", UID: "u-1", ResourceVersion: "42",
			Labels: map[string]string{"team": "etat-civil", "kubernetes.io/metadata.name": "trifouilly"},
			Annotations: map[string]string{
				jetonv1alpha1.AnnotationOwnerProof:                 "proof",
				"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 4096),
			},
		},
		Spec:   corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}},
		Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive},
	}
	for k, v := range NamespaceLabels("trifouilly", jetonv1alpha1.PodSecurityBaseline) {
		ns.Labels[k] = v
	}
	slim := SlimNamespace(ns)
	if twice := SlimNamespace(slim); !equality.Semantic.DeepEqual(twice, slim) {
		t.Errorf("SlimNamespace is not idempotent: %+v, then %+v", slim, twice)
	}
	if !UpToDate(slim, "trifouilly", jetonv1alpha1.PodSecurityBaseline) || UpToDate(slim, "trifouilly", jetonv1alpha1.PodSecurityRestricted) {
		t.Errorf("UpToDate on the slim form differs from the whole namespace")
	}
	if slim.Name != ns.Name || slim.UID != ns.UID || slim.ResourceVersion != ns.ResourceVersion ||
		slim.Annotations[jetonv1alpha1.AnnotationOwnerProof] != "proof" {
		t.Errorf("slim namespace lost what jeton reads: %+v", slim.ObjectMeta)
	}
	if len(slim.Annotations) != 1 || slim.Labels["team"] != "" || len(slim.Labels) != len(NamespaceLabels("x", "")) {
		t.Errorf("slim namespace kept others' labels or annotations: %v %v", slim.Labels, slim.Annotations)
	}
}
