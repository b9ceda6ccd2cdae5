package gateway

import (
	discoveryv1 "k8s.io/api/discovery/v1"
)

// ReadyEndpoints counts the gateway replicas behind its own Service's EndpointSlices: the
// distinct endpoints that may send requests upstream. The budgets are split among
// max(--replicas, ReadyEndpoints) replicas (Limits.SetReplicas).
//
// Counting too many only lowers each replica's share; counting too few lets the replicas
// together exceed the vendor's limits. So, on the safe side:
//   - an endpoint counts when ready (an absent condition means ready, as the
//     EndpointConditions documentation says), serving or terminating: a terminating
//     replica still finishes the requests it has;
//   - a replica is counted once, by its Pod (targetRef) when known, else by its first
//     address: a dual-stack Service lists each Pod in an IPv4 and an IPv6 slice.
func ReadyEndpoints(slices []discoveryv1.EndpointSlice) int {
	seen := map[string]struct{}{}
	for i := range slices {
		for _, e := range slices[i].Endpoints {
			if !maySend(e.Conditions) {
				continue
			}
			var key string
			switch {
			case e.TargetRef != nil && e.TargetRef.UID != "":
				key = "uid/" + string(e.TargetRef.UID)
			case e.TargetRef != nil && e.TargetRef.Name != "":
				key = "pod/" + e.TargetRef.Namespace + "/" + e.TargetRef.Name
			case len(e.Addresses) > 0:
				key = "address/" + e.Addresses[0]
			default:
				continue
			}
			seen[key] = struct{}{}
		}
	}
	return len(seen)
}

func maySend(c discoveryv1.EndpointConditions) bool {
	isTrue := func(b *bool) bool { return b != nil && *b }
	return c.Ready == nil || *c.Ready || isTrue(c.Serving) || isTrue(c.Terminating)
}
