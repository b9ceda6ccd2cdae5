package fault

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/testenv"
)

// A new process over a converged fleet (a restart, a rollout, a fail-over) lists each kind
// once, reconciles everything and writes nothing: no status, no Secret, no NetworkPolicy,
// no namespace label; and it reads no object one by one. This is what keeps a fleet of
// thousands of clients from costing thousands of requests at every restart: it broke once
// when the cache's slim forms were computed twice over on the initial list.
func TestRestartOfAConvergedFleetWritesNothing(t *testing.T) {
	ctx := context.Background()
	r := seeded(t)
	sfx := suffix(r)
	credNS := "fault-restart-" + sfx
	newCredentialsNamespace(t, ctx, credNS)
	emu := emulator.New()
	var tenants []*tenant
	for i := range 24 {
		tenants = append(tenants, createTenant(t, ctx, r, emu, credNS, fmt.Sprintf("r%s-%02d", sfx, i)))
	}
	first := startOperator(t, "restart-1", credNS)
	testenv.WaitFor(t, 90*time.Second, "convergence", func(ctx context.Context) error {
		return converged(ctx, credNS, tenants, nil)
	})
	first.kill(t)

	second := startOperator(t, "restart-2", credNS)
	// Every PublicClient and Habilitation reconciled, and nothing left in the queues.
	testenv.WaitFor(t, 90*time.Second, "the new process to reconcile everything", func(context.Context) error {
		n, err := reconciles(second)
		if err != nil {
			return err
		}
		depth, _, err := second.Metric("workqueue_depth")
		if err != nil {
			return err
		}
		active, _, err := second.Metric("controller_runtime_active_workers")
		if err != nil {
			return err
		}
		if n < float64(2*len(tenants)) || depth > 0 || active > 0 {
			return fmt.Errorf("%v reconciles, %v queued, %v active", n, depth, active)
		}
		return nil
	})
	w, err := writes(second)
	if err != nil {
		t.Fatal(err)
	}
	gets, _, err := second.Metric("rest_client_requests_total", `method="GET"`)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restart over %d converged clients: %v writes, %v GETs", len(tenants), w, gets)
	if w != 0 {
		t.Errorf("the restart wrote %v times; over a converged fleet it must write nothing", w)
	}
	// Discovery and the owner-proof key are a handful of GETs whatever the fleet's size;
	// one per object would be at least one per client.
	if gets >= float64(len(tenants)) {
		t.Errorf("the restart sent %v GETs for %d clients: it reads objects one by one instead of from its cache", gets, len(tenants))
	}
	checkRestarts(t, ctx, tenants)
	noTokenIn(t, "output of "+second.name, second.Out.String(), tokensOf(tenants))
}
