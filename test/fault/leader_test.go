package fault

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/testenv"
)

// writeMethods are the HTTP methods of writes to the API server.
var writeMethods = []string{"POST", "PUT", "PATCH", "DELETE"}

// writes counts o's requests to the API server that write anything (client-go's
// rest_client_requests_total, which covers every client of the process, lease included).
func writes(o *operator) (float64, error) {
	var total float64
	for _, m := range writeMethods {
		v, _, err := o.Metric("rest_client_requests_total", fmt.Sprintf("method=%q", m))
		if err != nil {
			return 0, err
		}
		total += v
	}
	return total, nil
}

// reconciles counts o's reconciles, all controllers and results together.
func reconciles(o *operator) (float64, error) {
	v, _, err := o.Metric("controller_runtime_reconcile_total")
	return v, err
}

// isLeader reads client-go's leader_election_master_status gauge of o.
func isLeader(o *operator) (bool, error) {
	v, _, err := o.Metric("leader_election_master_status", `name="jeton.dev"`)
	return v == 1, err
}

// Two replicas with --leader-elect: only the leader reconciles and writes; the follower
// sends no write at all, not even to the Lease, though its informers run. When the leader is SIGKILLed (its Lease is
// not released), the follower takes over once the Lease expires and converges new objects.
func TestOnlyTheLeaderWrites(t *testing.T) {
	ctx := context.Background()
	r := seeded(t)
	sfx := suffix(r)
	credNS := "fault-leader-" + sfx
	newCredentialsNamespace(t, ctx, credNS)
	emu := emulator.New()

	// The first replica is leader before the second starts: two replicas starting at once
	// both try to create the missing Lease, and the loser's failed POST would count as a
	// write below.
	leArgs := []string{"--leader-elect", "--leader-election-namespace", credNS}
	leader := startOperator(t, "replica-a", credNS, leArgs...)
	testenv.WaitFor(t, 60*time.Second, "replica-a to lead", func(context.Context) error {
		if ok, err := isLeader(leader); err != nil || !ok {
			return fmt.Errorf("not the leader yet (%v)", err)
		}
		return nil
	})
	follower := startOperator(t, "replica-b", credNS, leArgs...)
	testenv.WaitFor(t, 60*time.Second, "replica-b to be up (informers synced)", follower.Ready)
	if ok, err := isLeader(follower); err != nil || ok {
		t.Fatalf("replica-b leads (%v) while replica-a holds the Lease (err %v)", ok, err)
	}
	t.Logf("leader: %s, follower: %s", leader.name, follower.name)

	var tenants []*tenant
	for i := range 5 {
		tenants = append(tenants, createTenant(t, ctx, r, emu, credNS, fmt.Sprintf("l%s-%d", sfx, i)))
	}
	testenv.WaitFor(t, 60*time.Second, "convergence under the leader", func(ctx context.Context) error {
		return converged(ctx, credNS, tenants, nil)
	})

	// The follower's counters are read after the leader's work is visible, so any write it
	// made while the leader worked is counted.
	fw, err := writes(follower)
	if err != nil {
		t.Fatal(err)
	}
	fr, err := reconciles(follower)
	if err != nil {
		t.Fatal(err)
	}
	lw, err := writes(leader)
	if err != nil {
		t.Fatal(err)
	}
	lr, err := reconciles(leader)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("leader %s: %v writes, %v reconciles; follower %s: %v writes, %v reconciles", leader.name, lw, lr, follower.name, fw, fr)
	if fw != 0 || fr != 0 {
		t.Errorf("the follower wrote %v times and reconciled %v times; a follower must do neither", fw, fr)
	}
	if lw == 0 || lr == 0 {
		t.Errorf("the leader shows %v writes and %v reconciles: the metrics do not count what they should, so the check above proves nothing", lw, lr)
	}

	// SIGKILL the leader: the Lease is left held, and expires (15s) before the takeover.
	leader.kill(t)
	rotate(t, ctx, emu, tenants[0])
	for i := range 3 {
		tenants = append(tenants, createTenant(t, ctx, r, emu, credNS, fmt.Sprintf("l%s-n%d", sfx, i)))
	}
	testenv.WaitFor(t, 90*time.Second, "takeover by the follower and convergence", func(ctx context.Context) error {
		return converged(ctx, credNS, tenants, nil)
	})
	if ok, err := isLeader(follower); err != nil || !ok {
		t.Errorf("the former follower %s is not the leader after the takeover (err %v)", follower.name, err)
	}
	if n, err := reconciles(follower); err != nil || n == 0 {
		t.Errorf("the new leader %s shows %v reconciles (err %v)", follower.name, n, err)
	}
	checkRestarts(t, ctx, tenants)
	for _, o := range []*operator{leader, follower} {
		noTokenIn(t, "output of "+o.name, o.Out.String(), tokensOf(tenants))
	}
}
