package gateway

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestReadyEndpoints(t *testing.T) {
	yes, no := true, false
	pod := func(uid string, ready, serving, terminating *bool, addrs ...string) discoveryv1.Endpoint {
		e := discoveryv1.Endpoint{Addresses: addrs,
			Conditions: discoveryv1.EndpointConditions{Ready: ready, Serving: serving, Terminating: terminating}}
		if uid != "" {
			e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: "jeton-system", Name: "gw-" + uid, UID: types.UID(uid)}
		}
		return e
	}
	slice := func(eps ...discoveryv1.Endpoint) discoveryv1.EndpointSlice {
		return discoveryv1.EndpointSlice{Endpoints: eps}
	}
	for _, tc := range []struct {
		name   string
		slices []discoveryv1.EndpointSlice
		want   int
	}{
		{"none", nil, 0},
		{"empty slice", []discoveryv1.EndpointSlice{slice()}, 0},
		{"two ready", []discoveryv1.EndpointSlice{slice(pod("a", &yes, &yes, &no, "10.0.0.1"), pod("b", &yes, &yes, &no, "10.0.0.2"))}, 2},
		{"ready absent means ready", []discoveryv1.EndpointSlice{slice(pod("a", nil, nil, nil, "10.0.0.1"))}, 1},
		{"not ready, not serving: not counted", []discoveryv1.EndpointSlice{slice(pod("a", &yes, nil, nil, "10.0.0.1"), pod("b", &no, &no, &no, "10.0.0.2"))}, 1},
		{"terminating but serving: still sending", []discoveryv1.EndpointSlice{slice(pod("a", &yes, nil, nil, "10.0.0.1"), pod("b", &no, &yes, &yes, "10.0.0.2"))}, 2},
		{"terminating, no longer serving: its last requests may be in flight", []discoveryv1.EndpointSlice{slice(pod("a", &yes, nil, nil, "10.0.0.1"), pod("b", &no, &no, &yes, "10.0.0.2"))}, 2},
		{"dual-stack: one Pod in two slices counts once", []discoveryv1.EndpointSlice{
			slice(pod("a", &yes, nil, nil, "10.0.0.1"), pod("b", &yes, nil, nil, "10.0.0.2")),
			slice(pod("a", &yes, nil, nil, "fd00::1"), pod("b", &yes, nil, nil, "fd00::2")),
		}, 2},
		{"the same Pod listed twice (slices being rewritten)", []discoveryv1.EndpointSlice{
			slice(pod("a", &yes, nil, nil, "10.0.0.1")), slice(pod("a", &yes, nil, nil, "10.0.0.1")),
		}, 1},
		{"no targetRef: by address", []discoveryv1.EndpointSlice{slice(pod("", &yes, nil, nil, "10.0.0.1"), pod("", &yes, nil, nil, "10.0.0.2"), pod("", &yes, nil, nil, "10.0.0.1"))}, 2},
		{"no targetRef, no address: nothing to count", []discoveryv1.EndpointSlice{slice(pod("", &yes, nil, nil))}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ReadyEndpoints(tc.slices); got != tc.want {
				t.Errorf("ReadyEndpoints = %d, want %d", got, tc.want)
			}
		})
	}
}
