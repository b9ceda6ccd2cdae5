package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
)

func TestMintPrintsAWorkingToken(t *testing.T) {
	emu := emulator.New()
	srv := httptest.NewServer(emu)
	defer srv.Close()

	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"mint", "--server", srv.URL, "--scopes", "a,b", "--expires-in", "720h", "APIEntreprise"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("mint: %v (stderr %q)", err, stderr.String())
	}
	tok := strings.TrimSpace(stdout.String())
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("stdout is not a single JWT (%d bytes)", len(tok))
	}
	if strings.Contains(stderr.String(), tok) {
		t.Error("the token was printed on stderr too")
	}
	tokens := emu.Tokens()
	if len(tokens) != 1 || tokens[0].API != jetonv1alpha1.APIEntreprise || len(tokens[0].Scopes) != 2 ||
		!strings.Contains(stderr.String(), tokens[0].ID) {
		t.Errorf("emulator tokens = %+v, stderr %q", tokens, stderr.String())
	}

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/privileges", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("privileges with the printed token: %d, want 200", resp.StatusCode)
	}
}

func TestMintErrors(t *testing.T) {
	srv := httptest.NewServer(emulator.New())
	defer srv.Close()
	for name, args := range map[string][]string{
		"unknown API":    {"mint", "--server", srv.URL, "Nope"},
		"no API":         {"mint", "--server", srv.URL},
		"both expiries":  {"mint", "--server", srv.URL, "--expires-in", "1h", "--expires-at", "2030-01-01T00:00:00Z", "APIEntreprise"},
		"bad DN scope":   {"mint", "--server", srv.URL, "--scopes", "x", "DemarchesNumeriques"},
		"stray argument": {"serve-please"},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := run(context.Background(), args, &stdout, &stderr); err == nil {
				t.Errorf("run(%v) succeeded, want an error", args)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing on failure", stdout.String())
			}
		})
	}
}

func TestLimitFlag(t *testing.T) {
	for _, tc := range []struct {
		limit string
		ok    bool
	}{
		{"APIEntreprise=60/1m,240/1m", true},
		{"APIParticulier=5/1s", true},
		{"Nope=60/1m", false},
		{"APIEntreprise=60", false},
		{"APIEntreprise=0/1m", false},
		{"APIEntreprise=60/1m,240/500ms", false},
	} {
		t.Run(tc.limit, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // serve, then stop at once: only the flags are under test
			var stdout, stderr bytes.Buffer
			err := run(ctx, []string{"--listen", "127.0.0.1:0", "--limit", tc.limit}, &stdout, &stderr)
			if (err == nil) != tc.ok {
				t.Errorf("run --limit %s: %v, want ok=%v", tc.limit, err, tc.ok)
			}
		})
	}
}
