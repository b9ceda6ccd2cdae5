//go:build unix

package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The benchmark prints errors of its HTTP clients; a request's query (a recipient here,
// names and birth dates on API Particulier) must not be in them.
func TestWithoutURLDropsTheURL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Nothing listens on port 1: the client fails with a *url.Error naming the URL.
	const query = "recipient=90000000000017&nom=Dupont"
	_, _, err := gwGet(ctx, &http.Client{}, "http://127.0.0.1:1/v3/x?"+query, "secret-bearer")
	if err == nil {
		t.Fatal("a request to a closed port succeeded")
	}
	for _, leak := range []string{"recipient", "Dupont", "127.0.0.1:1/v3", "secret-bearer"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("the error %q names %q", err, leak)
		}
	}
	if !strings.Contains(err.Error(), "Get") {
		t.Errorf("the error %q lost the operation", err)
	}

	cases := []struct {
		name string
		in   error
		want string
	}{
		{"nil stays nil", nil, ""},
		{"other errors untouched", errors.New("boom"), "boom"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := withoutURL(c.in)
			if (got == nil) != (c.want == "") || (got != nil && got.Error() != c.want) {
				t.Errorf("withoutURL(%v) = %v, want %q", c.in, got, c.want)
			}
		})
	}
}

// gwLargeSIRET must be an établissement the upstream serves like any other: a valid SIRET,
// so the gateway's rules see an ordinary data route.
func TestGWLargeSIRETIsValid(t *testing.T) {
	if len(gwLargeSIRET) != 14 || !luhnValid(gwLargeSIRET) {
		t.Fatalf("gwLargeSIRET %q is not a valid SIRET", gwLargeSIRET)
	}
	if gwLargeSIRET == siretFor(0) || gwLargeSIRET == siretFor(gwChildHabilitations-1) {
		t.Fatalf("gwLargeSIRET %q is a client's SIRET", gwLargeSIRET)
	}
}
