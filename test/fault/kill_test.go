package fault

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/testenv"
)

// The operator is SIGKILLed at random points while it converges (first injection, then
// rotation of some tokens and deletion of some Habilitations), and restarted each time.
// At the end nothing is lost, nothing is duplicated, no token is anywhere but in its source
// Secret and its own client's Secret, and each rotation restarted the workloads once.
func TestKillAtRandomPoints(t *testing.T) {
	ctx := context.Background()
	r := seeded(t)
	n, injectKills, rotateKills, deletions := 30, 2, 1, 3
	if *long {
		n, injectKills, rotateKills, deletions = 100, 5, 5, 10
	}
	if *clients > 0 {
		n, deletions = *clients, max(*clients/10, 1)
	}
	if *kills > 0 {
		injectKills, rotateKills = (*kills+1)/2, *kills/2
	}
	// Convergence takes longer with more clients at the low rate limit below.
	converge := 90*time.Second + time.Duration(n)*300*time.Millisecond
	t.Logf("%d clients, %d kills during the first injection, %d during rotation, %d deletions", n, injectKills, rotateKills, deletions)
	sfx := suffix(r)
	credNS := "fault-kill-" + sfx
	newCredentialsNamespace(t, ctx, credNS)
	emu := emulator.New()
	var tenants []*tenant
	for i := range n {
		tenants = append(tenants, createTenant(t, ctx, r, emu, credNS, fmt.Sprintf("k%s-%03d", sfx, i)))
	}

	var ops []*operator
	start := func() *operator {
		// A low client-side rate limit stretches convergence over seconds, so that the
		// kill points land inside it rather than after it.
		o := startOperator(t, fmt.Sprintf("kill-%d", len(ops)+1), credNS, "--kube-api-qps", "20", "--kube-api-burst", "10")
		ops = append(ops, o)
		return o
	}

	// First injection, killed at random numbers of injected Secrets.
	progress := func(ctx context.Context) (int, error) { return injectedWith(ctx, credNS, tenants) }
	for _, at := range killPoints(r, injectKills, n) {
		killAt(t, start(), at, n, progress)
	}
	o := start()
	testenv.WaitFor(t, converge, "convergence after the injection kills", func(ctx context.Context) error {
		return converged(ctx, credNS, tenants, nil)
	})

	// Rotate half of the tokens and delete a few Habilitations, killed at random numbers
	// of rotated Secrets.
	perm := r.Perm(n)
	var rotated, deleted, live []*tenant
	for i, p := range perm {
		switch {
		case i < n/2:
			rotated = append(rotated, tenants[p])
		case i < n/2+deletions:
			deleted = append(deleted, tenants[p])
		}
	}
	for _, tn := range tenants {
		if !slices.Contains(deleted, tn) {
			live = append(live, tn)
		}
	}
	for _, tn := range rotated {
		rotate(t, ctx, emu, tn)
	}
	for _, tn := range deleted {
		h := &jetonv1alpha1.Habilitation{}
		h.Namespace, h.Name = credNS, tn.hab
		if err := env.Client.Delete(ctx, h); err != nil {
			t.Fatalf("deleting Habilitation %s: %v", tn.hab, err)
		}
	}
	rotation := func(ctx context.Context) (int, error) { return injectedWith(ctx, credNS, rotated) }
	points := killPoints(r, rotateKills, len(rotated))
	for i, at := range points {
		if i > 0 {
			o = start()
		}
		killAt(t, o, at, len(rotated), rotation)
	}
	final := start()
	testenv.WaitFor(t, converge, "convergence after the rotation kills", func(ctx context.Context) error {
		return converged(ctx, credNS, live, deleted)
	})
	checkRestarts(t, ctx, live)
	if !final.Running() {
		t.Errorf("the last operator exited: %v", final.ExitErr())
	}

	// The client namespaces hold nothing of another client: each holds one jeton Secret.
	for _, tn := range live {
		list := &jetonv1alpha1.HabilitationList{}
		if err := env.Client.List(ctx, list, client.InNamespace(tn.client)); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 0 {
			t.Errorf("namespace %s holds Habilitations", tn.client)
		}
	}
	secrets := tokensOf(tenants)
	for _, op := range ops {
		noTokenIn(t, "output of operator "+op.name, op.Out.String(), secrets)
	}
}

// killPoints returns k sorted progress thresholds in [0, total): each kill happens once at
// least that many items are done (0: right after start, while caches sync).
func killPoints(r *rand.Rand, k, total int) []int {
	points := make([]int, k)
	for i := range points {
		points[i] = r.IntN(max(total, 1))
	}
	slices.Sort(points)
	return points
}

// killAt SIGKILLs o as soon as progress reaches at (of total), and logs where it struck.
func killAt(t *testing.T, o *operator, at, total int, progress func(context.Context) (int, error)) {
	t.Helper()
	var reached int
	err := testenv.Poll(90*time.Second+time.Duration(total)*300*time.Millisecond, 10*time.Millisecond, func(ctx context.Context) error {
		if !o.Running() {
			return fmt.Errorf("operator %s exited on its own: %v", o.name, o.ExitErr())
		}
		n, err := progress(ctx)
		if err != nil {
			return err
		}
		reached = n
		if n < at {
			return fmt.Errorf("progress %d/%d, waiting for %d", n, total, at)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("before killing %s: %v", o.name, err)
	}
	o.kill(t)
	// Read after the kill: what the operator had done when it died.
	after, _ := progress(context.Background())
	t.Logf("SIGKILL %s at progress %d/%d (target %d, %d when it was dead)", o.name, reached, total, at, after)
}
