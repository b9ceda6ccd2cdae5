package main

import "testing"

func TestReadJudgements(t *testing.T) {
	restart := map[string]float64{
		"GET /api": 1, "GET /openapi/v3": 2, "GET endpoints": 1, "GET endpointslices": 1, // not the operator's
		"GET secrets":         1, // the owner-proof key
		"WATCH habilitations": 1, "WATCH namespaces": 1, "WATCH secrets": 2,
	}
	for _, tc := range []struct {
		name      string
		reads     map[string]float64
		onePer    bool
		objectGet float64
	}{
		{"a restart as measured", restart, true, 1},
		{"a GET per client", map[string]float64{"GET secrets": 1000, "WATCH secrets": 2}, false, 1000},
		{"lists repeated", map[string]float64{"LIST habilitations": 1, "WATCH habilitations": 1, "WATCH secrets": 3}, false, 0},
		{"the API server's own reads only", map[string]float64{"GET endpoints": 150, "LIST services": 8}, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := onePerKind(tc.reads); got != tc.onePer {
				t.Errorf("onePerKind = %v, want %v", got, tc.onePer)
			}
			if got := objectGets(tc.reads); got != tc.objectGet {
				t.Errorf("objectGets = %v, want %v", got, tc.objectGet)
			}
		})
	}
}

func TestNoPerObjectGets(t *testing.T) {
	for _, tc := range []struct {
		gets float64
		n    int
		want bool
	}{
		{1, 1000, true},     // the owner-proof key
		{2, 1000, true},     // and one create that raced its cache
		{3, 1000, false},    // more than that at N=1000 is a pattern
		{4, 10000, true},    // a handful among 10,000 clients
		{1000, 1000, false}, // one per client
		{100, 10000, false}, // one per hundred clients
		{0, 10, true},
	} {
		if got := noPerObjectGets(tc.gets, tc.n); got != tc.want {
			t.Errorf("noPerObjectGets(%v, %d) = %v, want %v", tc.gets, tc.n, got, tc.want)
		}
	}
}
