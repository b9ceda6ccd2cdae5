package cluster

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/injection"
	"github.com/jeton-dev/jeton/internal/testenv"
	"github.com/jeton-dev/jeton/internal/token"
)

// TestRotationRollsOutOnce: a rotated token rolls the workload that uses it out exactly
// once, to a new ReplicaSet whose pods are Running, the old pods gone; a workload of the
// same namespace that does not use it never rolls.
func TestRotationRollsOutOnce(t *testing.T) {
	ctx := context.Background()
	sfx := suffix()
	pc := readyClient(t, "roll-"+sfx, jetonv1alpha1.NamespacePolicyDelete)
	ns := pc.TargetNamespace()
	tok := mint(t)
	h := habilitation(t, "roll-"+sfx, pc.Name, tok)
	testenv.WaitFor(t, waitTimeout, "the token injected", injected(ns, h.Name, token.Fingerprint(tok)))

	user := workload(ns, "teleservice", h.Name)
	// Reads a Secret of its own, not jeton's.
	other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "smtp"}, StringData: map[string]string{"PASSWORD": "x"}}
	bystander := workload(ns, "bystander", other.Name)
	for _, o := range []client.Object{user, other, bystander} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []*appsv1.Deployment{user, bystander} {
		if rev := rolledOut(t, d, ""); rev != 1 {
			t.Fatalf("Deployment %s: revision %d before any rotation, want 1", d.Name, rev)
		}
	}

	newTok := mint(t)
	newFP := token.Fingerprint(newTok)
	if err := rotate(ctx, h, newTok); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, waitTimeout, "the new token injected", injected(ns, h.Name, newFP))
	if rev := rolledOut(t, user, injection.RestartedFor("", h.Name, newFP)); rev != 2 {
		t.Errorf("Deployment %s rolled out %d times for one rotation, want once", user.Name, rev-1)
	}
	// Once jeton is done with the rotation the count is final: it never patches twice for
	// one token.
	testenv.WaitFor(t, waitTimeout, "the rotation recorded", recorded(h, newFP))
	testenv.WaitFor(t, waitTimeout, "the operator idle", op.quiet(0))
	if rev := rolledOut(t, user, injection.RestartedFor("", h.Name, newFP)); rev != 2 {
		t.Errorf("Deployment %s: revision %d once jeton is idle, want 2", user.Name, rev)
	}
	rss := replicaSets(t, user)
	if len(rss) != 2 {
		t.Fatalf("Deployment %s has %d ReplicaSets, want the first and the rolled-out one", user.Name, len(rss))
	}
	for _, rs := range rss {
		running := rs.Spec.Template.Annotations[jetonv1alpha1.AnnotationRestartedFor] != ""
		if want := map[bool]int32{true: 1, false: 0}[running]; *rs.Spec.Replicas != want || rs.Status.Replicas != want {
			t.Errorf("ReplicaSet %s (restarted-for %q): %d replicas wanted, %d there; want %d", rs.Name,
				rs.Spec.Template.Annotations[jetonv1alpha1.AnnotationRestartedFor], *rs.Spec.Replicas, rs.Status.Replicas, want)
		}
	}
	if rev := rolledOut(t, bystander, ""); rev != 1 {
		t.Errorf("Deployment %s, which does not use the rotated Secret, rolled out %d times", bystander.Name, rev-1)
	}
	noToken(t, "the operator's logs", op.out.String(), []string{tok, newTok})
}

// knownStorm marked the restart storm while it was known: jeton restarted a workload once
// per rotated Secret it used, each with its own unsynchronized patch, so rotating the 50
// tokens of a client at once rolled the Deployment using all of them out 22 times and its
// annotation lost 28 of the 50 entries. The restarts of a client namespace are now batched
// (controllers/workload_restarts.go); false makes every such finding a failure again.
const knownStorm = false

// TestRotationStormRollsEachWorkloadOnce rotates the 50 tokens of one client at once
// (a vendor regenerating every token of a client). Each workload using some of them rolls
// out once, to the final tokens: not once per token (a restart storm). A workload that
// uses none never rolls. An operator restart (a full resync) then rolls nothing.
func TestRotationStormRollsEachWorkloadOnce(t *testing.T) {
	const tokens = 50
	ctx := context.Background()
	sfx := suffix()
	pc := readyClient(t, "storm-"+sfx, jetonv1alpha1.NamespacePolicyDelete)
	ns := pc.TargetNamespace()
	habs := make([]*jetonv1alpha1.Habilitation, tokens)
	toks := make([]string, tokens)
	names := make([]string, tokens)
	for i := range habs {
		toks[i] = mint(t)
		names[i] = fmt.Sprintf("storm-%s-%02d", sfx, i)
		habs[i] = habilitation(t, names[i], pc.Name, toks[i])
	}
	for i, h := range habs {
		testenv.WaitFor(t, waitTimeout, "token "+h.Name+" injected", injected(ns, h.Name, token.Fingerprint(toks[i])))
	}

	other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "smtp"}, StringData: map[string]string{"PASSWORD": "x"}}
	workloads := []struct {
		d    *appsv1.Deployment
		uses []int // indexes of the Habilitations whose Secrets it reads
	}{
		{workload(ns, "all", names...), span(0, tokens)},
		{workload(ns, "one", names[7]), []int{7}},
		{workload(ns, "ten", names[20:30]...), span(20, 30)},
		{workload(ns, "bystander", other.Name), nil},
	}
	if err := env.Client.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	for _, w := range workloads {
		if err := env.Client.Create(ctx, w.d); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range workloads {
		if rev := rolledOut(t, w.d, ""); rev != 1 {
			t.Fatalf("Deployment %s: revision %d before any rotation, want 1", w.d.Name, rev)
		}
	}

	newToks := make([]string, tokens)
	for i := range newToks {
		newToks[i] = mint(t)
	}
	// All at once, as a vendor's script or a secret manager syncing would.
	var wg sync.WaitGroup
	errs := make([]error, tokens)
	for i, h := range habs {
		wg.Go(func() { errs[i] = rotate(ctx, h, newToks[i]) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, h := range habs {
		testenv.WaitFor(t, waitTimeout, "token "+h.Name+" rotated", injected(ns, h.Name, token.Fingerprint(newToks[i])))
	}

	// The final annotation names every Secret the workload uses with its new token.
	final := func(uses []int) string {
		a := ""
		for _, i := range uses {
			a = injection.RestartedFor(a, names[i], token.Fingerprint(newToks[i]))
		}
		return a
	}
	// Judged once jeton has recorded every rotation and is idle: whatever it does for them
	// is done, and each Deployment's last rollout is complete. It returns the rollouts of each workload.
	// Findings that are the restart storm itself (a workload using several rotated tokens
	// rolled more than once, or its annotation lost some of them) go to storm.
	var storm []string
	check := func(when string) map[string]int {
		t.Helper()
		for i, h := range habs {
			testenv.WaitFor(t, waitTimeout, "rotation of "+h.Name+" recorded", recorded(h, token.Fingerprint(newToks[i])))
		}
		testenv.WaitFor(t, waitTimeout, "the operator idle", op.quiet(0))
		rollouts := map[string]int{}
		for _, w := range workloads {
			key := client.ObjectKeyFromObject(w.d)
			var rev int
			testenv.WaitFor(t, rolloutTimeout, "Deployment "+key.String()+" rolled out", func(ctx context.Context) (err error) {
				rev, err = testenv.RolledOut(ctx, env.Client, key)
				return err
			})
			rollouts[w.d.Name] = rev - 1
			report := t.Errorf
			if len(w.uses) > 1 {
				report = func(format string, args ...any) { storm = append(storm, fmt.Sprintf(format, args...)) }
			}
			if want := min(len(w.uses), 1); rev-1 != want {
				report("%s: Deployment %s (uses %d of the %d rotated tokens) rolled out %d times, want %d",
					when, w.d.Name, len(w.uses), tokens, rev-1, want)
			}
			d := &appsv1.Deployment{}
			if err := env.Client.Get(ctx, key, d); err != nil {
				t.Fatal(err)
			}
			if got, want := d.Spec.Template.Annotations[jetonv1alpha1.AnnotationRestartedFor], final(w.uses); got != want {
				report("%s: Deployment %s: %s names %d of the %d new tokens it uses, not all",
					when, w.d.Name, jetonv1alpha1.AnnotationRestartedFor, named(got, names, newToks), len(w.uses))
			}
		}
		return rollouts
	}
	before := check("after the rotation")

	list := &jetonv1alpha1.HabilitationList{}
	if err := env.Client.List(ctx, list, client.InNamespace(credNS)); err != nil {
		t.Fatal(err)
	}
	noToken(t, "the operator's logs", op.out.String(), append(toks, newToks...))
	restartOperator(t)
	testenv.WaitFor(t, waitTimeout, "the restarted operator's resync", op.quiet(len(list.Items)))
	found := len(storm)
	after := check("after an operator restart (a full resync)")
	storm = storm[:found] // the same findings again; what matters now is that nothing rolled
	for name, n := range after {
		if n != before[name] {
			t.Errorf("the operator's restart rolled Deployment %s out again: %d rollouts, %d before", name, n, before[name])
		}
	}
	noToken(t, "the restarted operator's logs", op.out.String(), append(toks, newToks...))

	switch {
	case knownStorm && len(storm) > 0:
		t.Skipf("known restart storm, see knownStorm:\n%s", strings.Join(storm, "\n"))
	case knownStorm:
		t.Errorf("no restart storm any more: set knownStorm = false so that this test guards against its return")
	default:
		for _, f := range storm {
			t.Error(f)
		}
	}
}

// named counts the entries of a restarted-for annotation that hold one of the new tokens.
func named(annotation string, names, newToks []string) int {
	n := 0
	for i, name := range names {
		if injection.RestartedFor(annotation, name, token.Fingerprint(newToks[i])) == annotation {
			n++
		}
	}
	return n
}

// span returns from, from+1, ..., to-1.
func span(from, to int) []int {
	s := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}
