package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
)

// failoverResult is a leader fail-over on a converged fleet: two replicas with leader
// election, the leader SIGKILLed (no chance to release its lease), the standby taking over.
type failoverResult struct {
	// toLeader is from the leader's death to the standby holding the lease; toIdle to the
	// standby having reconciled everything and gone quiet.
	toLeader, toIdle time.Duration
	// writes are the API server's count of writes during the take-over, by verb and
	// resource; leases are the lease renewals among them.
	writes map[string]float64
}

// The writes of leader election itself, which a take-over cannot avoid: lease renewals,
// and the one "became leader" event client-go records on the Lease.
const (
	leaseWrites       = "PUT leases"
	leaderEventWrites = "POST events"
)

// failoverScenario runs the fail-over on the converged cluster of a convergence run.
func failoverScenario(ctx context.Context, opArgs operatorArgs, cs kubernetes.Interface, n int) (res failoverResult, err error) {
	elect := opArgs
	elect.extra = append(append([]string{}, opArgs.extra...), "--leader-elect", "--leader-election-namespace", credentialsNamespace)
	idle := idleOptions{minReconciles: map[string]float64{"publicclient": float64(n), "habilitation": float64(n)}, quiet: 3 * time.Second, timeout: scaled(10*time.Minute, n), leaderElection: true}

	leader, err := startOperator(ctx, elect, "failover-leader")
	if err != nil {
		return res, err
	}
	defer func() { _ = leader.stop() }()
	if err := waitLeader(ctx, leader, 2*time.Minute); err != nil {
		return res, err
	}
	if _, err := leader.waitIdle(ctx, idle); err != nil {
		return res, err
	}
	// The standby syncs its caches while it waits for the lease (controller-runtime starts
	// them before leader election), so the take-over costs no list. A profiler address
	// given with -operator-args is the leader's: two processes cannot bind it.
	standbyArgs := elect
	standbyArgs.extra = slices.DeleteFunc(slices.Clone(elect.extra), func(a string) bool { return strings.HasPrefix(a, "--pprof-bind-address") })
	standby, err := startOperator(ctx, standbyArgs, "failover-standby")
	if err != nil {
		return res, err
	}
	defer func() {
		if serr := standby.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	before, err := apiserverWrites(ctx, cs)
	if err != nil {
		return res, err
	}
	died := time.Now()
	_ = syscall.Kill(-leader.pid(), syscall.SIGKILL)
	<-leader.exited
	leader.stopped = true
	if err := waitLeader(ctx, standby, 2*time.Minute); err != nil {
		return res, err
	}
	res.toLeader = time.Since(died)
	var idleAt time.Time
	idle.idleAt = &idleAt
	if _, err := standby.waitIdle(ctx, idle); err != nil {
		return res, err
	}
	res.toIdle = idleAt.Sub(died)
	after, err := apiserverWrites(ctx, cs)
	if err != nil {
		return res, err
	}
	res.writes = diffCounts(before, after)
	return res, nil
}

// waitLeader waits until o reports holding the lease (controller-runtime's
// leader_election_master_status).
func waitLeader(ctx context.Context, o *operator, timeout time.Duration) error {
	return poll(ctx, timeout, 100*time.Millisecond, "the operator to hold the leader lease", func() (bool, error) {
		ss, err := o.scrape(ctx)
		if err != nil {
			return false, err
		}
		return ss.sum("leader_election_master_status", nil) >= 1, nil
	})
}

// nonLeaseWrites is the total of writes other than leader election's own.
func (r failoverResult) nonLeaseWrites() float64 {
	total := 0.0
	for k, v := range r.writes {
		switch k {
		case leaseWrites:
		case leaderEventWrites:
			total += max(v-1, 0)
		default:
			total += v
		}
	}
	return total
}

func (r failoverResult) String() string {
	return fmt.Sprintf("leader after %s, idle after %s, writes: %s", r.toLeader.Round(time.Millisecond), r.toIdle.Round(time.Millisecond), fmtCounts(r.writes))
}
