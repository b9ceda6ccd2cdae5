package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// SyncBuffer is a bytes.Buffer safe for a writer (a logger, a child process) and a test
// reading it at the same time.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// FreeAddr returns a loopback address with a port nobody listens on right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// Readyz returns nil once the health endpoint at addr (host:port) answers /readyz with
// 200: a manager's informers have synced.
func Readyz(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s/readyz: %s", addr, resp.Status)
	}
	return nil
}

// LeaseHeld returns nil once the Lease jeton.dev in namespace has a holder: a manager run
// with --leader-elect leads.
func LeaseHeld(ctx context.Context, c client.Reader, namespace string) error {
	lease := &coordinationv1.Lease{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "jeton.dev"}, lease); err != nil {
		return err
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		return errors.New("lease jeton.dev has no holder")
	}
	return nil
}

// ContainsToken reports whether text holds the secret part of any of tokens: a JWT's
// signature, else the whole token. Test output and the manager's logs must never show one.
func ContainsToken(text string, tokens []string) bool {
	for _, tok := range tokens {
		secret := tok
		if i := strings.LastIndexByte(tok, '.'); i >= 0 {
			secret = tok[i+1:]
		}
		if secret != "" && strings.Contains(text, secret) {
			return true
		}
	}
	return false
}
