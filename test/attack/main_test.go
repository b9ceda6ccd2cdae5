// Package attack is the adversarial suite of DESIGN.md §6 (trust model): on a real control
// plane, with the real manager binary (cmd/, built once, CGO off, as shipped), each test
// plays one of the roles of the trust-model table and attempts what that role "can never"
// do: send a client's token to a foreign host, move a bound token to another client, claim
// a reserved or pre-created namespace, fake a rotation, grow jeton's memory with look-alike
// Secrets, have jeton delete them, or leak a token through a hostile API answer. Each test
// shows the attempt fails and that the other clients are unaffected.
//
// One operator process serves the whole package (one credentials namespace, and the
// loopback servers it may talk to listed in --allowed-api-hosts at start), so the suite
// stays short. After each test and at the end of the package, a global check looks at every
// Secret of the cluster (a client's token is only in its source Secret and in the injected
// Secret of its own namespace), every jeton resource, event and the operator's output (no
// token, nor the payload or signature of a JWT), and every request the loopback servers saw
// (no client token ever reached one).
//
// Tokens are never printed: messages say "the token" and give fingerprints, and whatever
// the suite prints from the cluster or the operator is redacted first.
package attack

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/testenv"
	"github.com/jeton-dev/jeton/internal/token"
)

const (
	// credNS is the one credentials namespace of the package.
	credNS = "attack-credentials"
	// operatorNS is the namespace the operator believes it runs in ($POD_NAMESPACE): reserved.
	operatorNS = "attack-system"
	// reservedNS is reserved through --reserved-namespaces.
	reservedNS = "attack-reserved"
	// probeInterval replaces the CRD's 30s minimum through the binary's test-only flag.
	probeInterval = time.Second
)

var (
	env *testenv.Env
	op  *operator
	// emu is the API emulator, served (through a recorder) on an allowed loopback host.
	emu    *emulator.Server
	emuURL string
	// servers are every loopback server of the package, by role.
	servers = map[string]*server{}
	// foreign is a loopback listener NOT in --allowed-api-hosts: nothing may ever reach it.
	foreign *server
	// hostileTLSName is put in the certificate the hostile TLS server presents.
	hostileTLSName atomic.Pointer[string]
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Run(func(e *testenv.Env) int {
		env = e
		return run(m)
	}, testenv.WithNamespaces(credNS, operatorNS, reservedNS)))
}

func run(m *testing.M) (code int) {
	// Every loopback server is listening before the operator starts, so that the allowed
	// ones can be listed in --allowed-api-hosts.
	emu = emulator.New()
	defer closeServers()
	emuSrv := newHTTPServer("emulator", emu)
	emuURL = emuSrv.url
	startHostileServers()
	foreign = newHTTPServer("foreign", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Answers like API Entreprise would: an attacker's server wants the token, not to fail.
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"privileges":["unites_legales_etablissements_insee"]}`))
	}))
	var allowed []string
	for name, s := range servers {
		if name != "foreign" {
			allowed = append(allowed, s.host)
		}
	}
	slices.Sort(allowed)

	var err error
	if op, err = startOperator(allowed); err != nil {
		fmt.Fprintln(os.Stderr, "attack:", err)
		return 1
	}
	defer func() {
		_ = op.Stop(25 * time.Second)
		if p := os.Getenv("JETON_ATTACK_OPERATOR_LOG"); p != "" {
			// The whole operator output, tokens redacted, for a closer look.
			if err := os.WriteFile(p, []byte(redact(op.Out.String())), 0o600); err != nil {
				fmt.Fprintln(os.Stderr, "attack: writing the operator log:", err)
			}
		}
		if code != 0 {
			fmt.Fprintf(os.Stderr, "attack: operator output (last 120 lines, tokens redacted):\n%s\n", redact(testenv.LastLines(op.Out.String(), 120)))
		}
	}()
	if err := testenv.Poll(60*time.Second, 100*time.Millisecond, op.Ready); err != nil {
		fmt.Fprintln(os.Stderr, "attack: the operator never became ready:", err)
		return 1
	}

	code = m.Run()

	// The package-wide check, once every test has run: where every token is, what the
	// operator printed, what jeton wrote in status and events, what the servers received.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if problems := globalProblems(ctx); len(problems) > 0 {
		fmt.Fprintln(os.Stderr, "attack: FAIL: global check at the end of the package:")
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "  -", p)
		}
		code = 1
	} else {
		fmt.Fprintln(os.Stderr, "attack: global check at the end of the package: ok")
	}
	if !op.Running() {
		fmt.Fprintln(os.Stderr, "attack: FAIL: the operator exited during the tests:", op.ExitErr())
		code = 1
	}
	return code
}

// ---------------------------------------------------------------------------------------
// The operator process.

// operator is the manager binary, with the pprof endpoint the memory test uses.
type operator struct {
	*testenv.Manager
	pprofAddr string
}

func startOperator(allowedHosts []string) (*operator, error) {
	pprofAddr, err := testenv.FreeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	m, err := env.StartManager(env.Kubeconfig,
		// A low GC target keeps the heap close to what is live, for the memory test.
		[]string{"GOGC=10", "POD_NAMESPACE=" + operatorNS},
		"--credentials-namespaces", credNS,
		"--reserved-namespaces", reservedNS,
		"--allowed-api-hosts", strings.Join(allowedHosts, ","),
		"--test-probe-interval", probeInterval.String(),
		"--metrics-secure=false", // loopback only: the tests scrape plain HTTP
		// The memory test forces a garbage collection before reading the heap.
		"--pprof-bind-address", pprofAddr,
		// Debug logs: more places a token could leak from, and all of them are checked.
		"--zap-log-level", "debug",
	)
	if err != nil {
		return nil, err
	}
	return &operator{Manager: m, pprofAddr: pprofAddr}, nil
}

// forceGC makes the operator collect garbage (the pprof heap endpoint's gc=1), so that the
// heap metrics that follow count live memory, not garbage awaiting collection.
func (o *operator) forceGC() error {
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get("http://" + o.pprofAddr + "/debug/pprof/heap?gc=1")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /debug/pprof/heap: %s", resp.Status)
	}
	_, err = bytes.NewBuffer(nil).ReadFrom(resp.Body)
	return err
}

// ---------------------------------------------------------------------------------------
// Loopback servers that record who connects and which tokens they receive.

// server is one loopback server. It records connections, requests, and the fingerprint of
// every credential it receives (Authorization bearer, X-Api-Key), never the credential.
type server struct {
	name  string
	host  string // host:port
	url   string // base URL
	close func()

	conns    atomic.Int64
	requests atomic.Int64
	mu       sync.Mutex
	fps      map[string]int // credential fingerprint → requests carrying it
}

func (s *server) record(r *http.Request) {
	s.requests.Add(1)
	var creds []string
	if a := r.Header.Get("Authorization"); a != "" {
		creds = append(creds, strings.TrimSpace(strings.TrimPrefix(a, "Bearer ")))
	}
	if k := r.Header.Get("X-Api-Key"); k != "" {
		creds = append(creds, k)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range creds {
		s.fps[token.Fingerprint(c)]++
	}
}

// received reports how many requests carried the token (any spelling: fingerprints are
// taken over the canonical form).
func (s *server) received(tok string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fps[token.Fingerprint(tok)]
}

// forget drops the records of a token (a failure already reported by the test that caused it).
func (s *server) forget(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.fps, token.Fingerprint(tok))
}

func newServer(name string) *server {
	s := &server{name: name, fps: map[string]int{}}
	servers[name] = s
	return s
}

// newHTTPServer serves h over plain HTTP on loopback, recording every request.
func newHTTPServer(name string, h http.Handler) *server {
	s := newServer(name)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.record(r)
		h.ServeHTTP(w, r)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	srv.Start()
	s.url, s.host, s.close = srv.URL, strings.TrimPrefix(srv.URL, "http://"), srv.Close
	return s
}

func closeServers() {
	for _, s := range servers {
		s.close()
	}
}

// ---------------------------------------------------------------------------------------
// Tokens handed out during the package, and where they may be.

// heldToken is one token (all its spellings) the suite handed to jeton.
type heldToken struct {
	label     string // "client X's token": what messages say instead of the token
	technical bool   // a vendor technical token: may be sent to an allowed API host
	canonical string
	spellings []string
	// allowed are the Secrets ("namespace/name") that may hold it: its source Secrets in
	// the credentials namespace and, for a client's token, the injected Secret in that
	// client's own namespace.
	allowed map[string]bool
}

var registry struct {
	mu     sync.Mutex
	tokens []*heldToken
}

// registerToken records tok (one spelling of a token) and Secrets allowed to hold it. A
// spelling of a token already registered joins it: allowed locations add up.
func registerToken(label string, technical bool, tok string, allowed ...string) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	canon := token.Canonical(tok)
	var ht *heldToken
	for _, t := range registry.tokens {
		if t.canonical == canon {
			ht = t
		}
	}
	if ht == nil {
		ht = &heldToken{label: label, technical: technical, canonical: canon, allowed: map[string]bool{}}
		registry.tokens = append(registry.tokens, ht)
	}
	if !slices.Contains(ht.spellings, tok) {
		ht.spellings = append(ht.spellings, tok)
	}
	for _, a := range allowed {
		ht.allowed[a] = true
	}
}

// disallow removes a location (an injected Secret that must be gone).
func disallow(tok, location string) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	canon := token.Canonical(tok)
	for _, t := range registry.tokens {
		if t.canonical == canon {
			delete(t.allowed, location)
		}
	}
}

func registeredTokens() []*heldToken {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	out := make([]*heldToken, len(registry.tokens))
	for i, t := range registry.tokens {
		c := *t
		c.spellings = slices.Clone(t.spellings)
		c.allowed = map[string]bool{}
		for k, v := range t.allowed {
			c.allowed[k] = v
		}
		out[i] = &c
	}
	return out
}

// secretParts are the strings that reveal a token: every spelling, the canonical form,
// a JWT's payload and signature segments (without padding), a Démarches Numériques
// token's secret. None may appear in logs, status or events.
func (t *heldToken) secretParts() []string {
	var parts []string
	add := func(s string) {
		if len(s) >= 8 && !slices.Contains(parts, s) {
			parts = append(parts, s)
		}
	}
	for _, s := range append([]string{t.canonical}, t.spellings...) {
		add(s)
		if segs := strings.Split(s, "."); len(segs) == 3 {
			add(strings.TrimRight(segs[1], "="))
			add(strings.TrimRight(segs[2], "="))
			continue
		}
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
		if err != nil {
			raw, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
		}
		if err == nil {
			if _, secret, ok := strings.Cut(string(raw), ";"); ok {
				add(secret)
			}
		}
	}
	return parts
}

// holds reports whether a Secret value holds the token, in any spelling.
func (t *heldToken) holds(v []byte) bool {
	for _, s := range t.spellings {
		if bytes.Contains(v, []byte(s)) {
			return true
		}
	}
	if len(v) > token.MaxSize {
		return false
	}
	return token.Canonical(strings.TrimSpace(string(v))) == t.canonical
}

// leaks returns the labels of the tokens some part of which text contains.
func leaks(text string) []string {
	var out []string
	for _, t := range registeredTokens() {
		for _, p := range t.secretParts() {
			if strings.Contains(text, p) {
				out = append(out, fmt.Sprintf("%s (fingerprint %s)", t.label, token.Fingerprint(t.canonical)))
				break
			}
		}
	}
	return out
}

// redact replaces every part of every registered token in s: whatever the suite prints
// from the cluster or the operator goes through it.
func redact(s string) string {
	for _, t := range registeredTokens() {
		parts := t.secretParts()
		// Longest first, so that a segment does not break a whole token's replacement.
		slices.SortFunc(parts, func(a, b string) int { return len(b) - len(a) })
		for _, p := range parts {
			s = strings.ReplaceAll(s, p, "[token]")
		}
	}
	return s
}

// globalProblems is the package-wide check (see the package comment).
func globalProblems(ctx context.Context) []string {
	var problems []string
	tokens := registeredTokens()

	// Where every token is: only where it is allowed.
	secrets := &corev1.SecretList{}
	if err := env.Client.List(ctx, secrets); err != nil {
		return []string{"listing Secrets: " + err.Error()}
	}
	for _, t := range tokens {
		for _, s := range secrets.Items {
			loc := s.Namespace + "/" + s.Name
			if t.allowed[loc] {
				continue
			}
			for _, v := range s.Data {
				if t.holds(v) {
					problems = append(problems, fmt.Sprintf("Secret %s holds %s (fingerprint %s), which may only be in [%s]",
						loc, t.label, token.Fingerprint(t.canonical), strings.Join(slices.Sorted(maps.Keys(t.allowed)), " ")))
					break
				}
			}
		}
	}

	// What the operator printed.
	for _, l := range leaks(op.Out.String()) {
		problems = append(problems, "the operator's output contains "+l)
	}

	// What jeton wrote in status and events.
	var dump []any
	pcs, habs, tts, evs, coreEvs := &jetonv1alpha1.PublicClientList{}, &jetonv1alpha1.HabilitationList{}, &jetonv1alpha1.TechnicalTokenList{}, &eventsv1.EventList{}, &corev1.EventList{}
	for _, list := range []client.ObjectList{pcs, habs, tts, evs, coreEvs} {
		if err := env.Client.List(ctx, list); err != nil {
			problems = append(problems, "listing jeton resources and events: "+err.Error())
		}
	}
	dump = append(dump, pcs.Items, habs.Items, tts.Items, evs.Items, coreEvs.Items)
	b, err := json.Marshal(dump)
	if err != nil {
		problems = append(problems, "encoding status and events: "+err.Error())
	}
	for _, l := range leaks(string(b)) {
		problems = append(problems, "a status or an event contains "+l)
	}

	// What the loopback servers received: never a client's token; nothing at all on the
	// foreign one.
	for _, s := range servers {
		for _, t := range tokens {
			if t.technical {
				continue
			}
			if n := s.received(t.canonical); n > 0 {
				problems = append(problems, fmt.Sprintf("server %q received %s (fingerprint %s) in %d request(s)",
					s.name, t.label, token.Fingerprint(t.canonical), n))
			}
		}
	}
	if c, r := foreign.conns.Load(), foreign.requests.Load(); c+r > 0 {
		problems = append(problems, fmt.Sprintf("the foreign server (not in --allowed-api-hosts) got %d connection(s) and %d request(s)", c, r))
	}
	return problems
}

// checkGlobal runs the global check at the end of a test.
func checkGlobal(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, p := range globalProblems(ctx) {
		t.Error("global check: " + p)
	}
	if !op.Running() {
		t.Errorf("the operator exited: %v", op.ExitErr())
	}
}

// ---------------------------------------------------------------------------------------
// Waiting.

// waitFor is testenv.WaitFor with cond's errors redacted: a failure message never carries
// a token.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) error) {
	t.Helper()
	testenv.WaitFor(t, timeout, what, func(ctx context.Context) error {
		if err := cond(ctx); err != nil {
			return errors.New(redact(err.Error()))
		}
		return nil
	})
}

// ---------------------------------------------------------------------------------------
// Names.

var rng = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x6a65746f6e))

// suffix returns a short random DNS-label suffix, so that the objects of one test never
// collide with another's.
func suffix() string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 5)
	for i := range b {
		b[i] = letters[rng.IntN(len(letters))]
	}
	return string(b)
}
