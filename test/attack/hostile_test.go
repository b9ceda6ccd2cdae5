package attack

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/token"
)

// bearer returns the credential of a request: what a hostile server echoes back.
func bearer(r *http.Request) string {
	return strings.TrimSpace(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// startHostileServers starts the hostile API servers (listed in --allowed-api-hosts, as an
// egress proxy or a mistaken base URL would be). Each echoes the token it receives in every
// place an answer can hold it.
func startHostileServers() {
	// 200 with privileges: the token, its segments, a 2 KiB name, unicode, control and
	// invisible characters, next to real scope names.
	newHTTPServer("hostile-echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := bearer(r)
		privileges := []string{tok, "Bearer " + tok, "unites_legales_etablissements_insee", strings.Repeat("a", 2048),
			"attestations_fiscales", "scopé_unicode", "\u202escope_bidi", "scope\x00nul", "scope\nnewline", "ΑPI_greek", ""}
		if segs := strings.Split(tok, "."); len(segs) == 3 {
			privileges = append(privileges, segs[1], segs[2], segs[1]+"."+segs[2])
		}
		writeJSON(w, http.StatusOK, map[string]any{"privileges": privileges, "scopes": privileges, "token": tok})
	}))
	// 200 with 10,000 privileges (short, scope-shaped and distinct, so that only the cap
	// limits them), the token first.
	newHTTPServer("hostile-many", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		const letters = "abcdefghijklmnopqrstuvwxyz"
		const alnum = letters + "0123456789"
		privileges := []string{bearer(r)}
		for i := 0; len(privileges) < 10_000; i++ {
			name := string(letters[i%26]) + string(alnum[(i/26)%36])
			if i >= 26*36 {
				name += string(alnum[(i/(26*36))%36])
			}
			privileges = append(privileges, name)
		}
		writeJSON(w, http.StatusOK, map[string]any{"privileges": privileges})
	}))
	// 429 whose Retry-After and RateLimit-* headers and error body are the token.
	newHTTPServer("hostile-429", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := bearer(r)
		w.Header().Set("Retry-After", tok)
		w.Header().Set("RateLimit-Limit", tok)
		w.Header().Set("RateLimit-Remaining", "0")
		w.Header().Set("RateLimit-Reset", tok)
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"errors": []map[string]any{{"code": tok, "title": tok, "detail": tok}}})
	}))
	// 200 with a 1 MiB body made of the token.
	newHTTPServer("hostile-huge", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := bearer(r)
		w.Header().Set("Content-Type", "application/json")
		var b strings.Builder
		b.WriteString(`{"privileges":[`)
		for b.Len() < 1<<20 {
			b.WriteString(`"` + tok + `",`)
		}
		b.WriteString(`"x"]}`)
		_, _ = w.Write([]byte(b.String()))
	}))
	// 401 whose error code, title, detail, source and meta are the token, and a GraphQL
	// error whose extension code and message are the token.
	newHTTPServer("hostile-errors", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := bearer(r)
		w.Header().Set("WWW-Authenticate", `Bearer error="`+tok+`"`)
		writeJSON(w, http.StatusUnauthorized, map[string]any{
			"errors": []map[string]any{{"code": tok, "title": tok, "detail": tok, "message": tok,
				"source": map[string]any{"parameter": tok}, "meta": map[string]any{"token": tok},
				"extensions": map[string]any{"code": tok}}},
		})
	}))
	// Not HTTP: a status line whose code is the token.
	rawServer("hostile-malformed", func(tok string) string {
		return "HTTP/1.1 2" + tok + " OK\r\nContent-Length: 0\r\n\r\n"
	})
	// TLS with a certificate whose names are the token (set by the test before it
	// creates the TechnicalToken): certificate errors quote names.
	tlsServer("hostile-tls")
}

// rawServer answers every request with whatever answer(token) returns, raw bytes.
func rawServer(name string, answer func(tok string) string) {
	s := newServer(name)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	s.host, s.url, s.close = l.Addr().String(), "http://"+l.Addr().String(), func() { _ = l.Close() }
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					s.record(r)
					if _, err := c.Write([]byte(answer(bearer(r)))); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// tlsServer serves HTTPS on localhost with a self-signed certificate named after
// hostileTLSName.
func tlsServer(name string) {
	s := newServer(name)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.record(r)
		writeJSON(w, http.StatusOK, map[string]any{"privileges": []string{bearer(r)}})
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the operator's refused handshakes
	srv.TLS = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		n := "hostile.invalid"
		if p := hostileTLSName.Load(); p != nil {
			n = *p
		}
		return selfSigned(n)
	}}
	srv.StartTLS()
	// Listed (and probed) as localhost:<port>: certificate name errors then quote the
	// certificate's DNS names.
	s.host = "localhost:" + portOf(srv.Listener.Addr().String())
	s.url, s.close = "https://"+s.host, srv.Close
}

func selfSigned(name string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name, Organization: []string{name}},
		Issuer:       pkix.Name{CommonName: name},
		DNSNames:     []string{name, "hostile.invalid"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

var scopeShape = regexp.MustCompile(`^[a-z][a-z0-9_.:-]{0,127}$`)

// Finding 8. The public APIs' answers (here: hostile servers on hosts the admin allowed)
// echo the technical token in every field, send a 2 KiB name, unicode, 10,000 entries, a
// 429 whose Retry-After is the token, a 1 MiB body, a malformed status line, a certificate
// named after the token. None of it reaches status, events or the operator's logs except as
// bounded, scope-shaped names and parsed numbers: never the token, nor its JWT segments.
func TestHostileAPIAnswers(t *testing.T) {
	ctx := context.Background()
	sfx := suffix()
	type hostile struct {
		server string
		tt     *jetonv1alpha1.TechnicalToken
		tok    string
		// done is the positive sign that the answer was recorded.
		done func(*jetonv1alpha1.TechnicalToken) error
	}
	probed := func(tt *jetonv1alpha1.TechnicalToken) error {
		if tt.Status.LastResult == nil || tt.Status.LastProbeTime == nil {
			return errors.New("not probed yet")
		}
		return nil
	}
	succeeded := func(tt *jetonv1alpha1.TechnicalToken) error {
		if err := probed(tt); err != nil {
			return err
		}
		if tt.Status.LastResult.Reason != jetonv1alpha1.ReasonProbeSucceeded || len(tt.Status.Privileges) == 0 {
			return fmt.Errorf("last result %s, %d privileges", tt.Status.LastResult.Reason, len(tt.Status.Privileges))
		}
		return nil
	}
	var hs []*hostile
	for _, name := range []string{"hostile-echo", "hostile-many", "hostile-429", "hostile-huge", "hostile-errors", "hostile-malformed", "hostile-tls"} {
		tok, _ := mint(t, jetonv1alpha1.APIEntreprise)
		ttName := name + "-" + sfx
		registerToken("the vendor's technical token "+ttName, true, tok, credNS+"/"+ttName+"-token")
		if name == "hostile-tls" {
			hostileTLSName.Store(&tok)
		}
		if err := env.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: ttName + "-token"},
			Data: map[string][]byte{"token": []byte(tok)}}); err != nil {
			t.Fatal(err)
		}
		h := &hostile{server: name, tok: tok, done: probed}
		if name == "hostile-echo" || name == "hostile-many" {
			h.done = succeeded
		}
		h.tt = newTechnicalToken(t, ttName, ttName+"-token", jetonv1alpha1.APIEntreprise, servers[name].url)
		hs = append(hs, h)
	}

	for _, h := range hs {
		t.Run(h.server, func(t *testing.T) {
			var got *jetonv1alpha1.TechnicalToken
			waitFor(t, waitTimeout, "a probe answered by "+h.server, func(ctx context.Context) error {
				o, err := fresh(ctx, h.tt)
				if err != nil {
					return err
				}
				got = o.(*jetonv1alpha1.TechnicalToken)
				if s := servers[h.server]; s.requests.Load()+s.conns.Load() == 0 {
					return errors.New("the server saw nothing yet")
				}
				return h.done(got)
			})
			res := got.Status.LastResult
			t.Logf("%s: Ready %s, last result %s (HTTP %d, code %q): %s; %d privileges", h.server, readyCond(got).Reason,
				res.Reason, res.HTTPStatus, res.Code, redact(res.Message), len(got.Status.Privileges))

			// Status: no token, no segment; privileges scope-shaped and bounded.
			b, err := json.Marshal(got.Status)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range leaks(string(b)) {
				t.Errorf("TechnicalToken %s status contains %s", h.tt.Name, l)
			}
			if len(got.Status.Privileges) > 256 {
				t.Errorf("TechnicalToken %s: %d privileges, want at most 256", h.tt.Name, len(got.Status.Privileges))
			}
			for _, p := range got.Status.Privileges {
				if !scopeShape.MatchString(p) {
					t.Errorf("TechnicalToken %s: privilege %q is not scope-shaped", h.tt.Name, redact(p))
				}
			}
			if h.server == "hostile-many" && len(got.Status.Privileges) != 256 {
				t.Errorf("TechnicalToken %s: %d privileges kept of 9,999 scope-shaped ones, want the cap (256)", h.tt.Name, len(got.Status.Privileges))
			}
			if len(b) > 64<<10 {
				t.Errorf("TechnicalToken %s status is %d bytes", h.tt.Name, len(b))
			}
			// Events about it.
			_, evs, err := eventReasons(ctx, "TechnicalToken", credNS, h.tt.Name)
			if err != nil {
				t.Fatal(err)
			}
			eb, err := json.Marshal(evs)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range leaks(string(eb)) {
				t.Errorf("an event about TechnicalToken %s contains %s", h.tt.Name, l)
			}
			// The technical token reached only the server it was meant for.
			for name, s := range servers {
				if name != h.server && s.received(h.tok) > 0 {
					t.Errorf("server %s received the technical token of %s (fingerprint %s)", name, h.tt.Name, token.Fingerprint(h.tok))
				}
			}
		})
	}
	// A few more probes, so that retries and backoffs are in the logs too.
	probeCycles(t, 2)
	for _, l := range leaks(op.Out.String()) {
		t.Errorf("the operator's output contains %s", l)
	}
	if n := servers["hostile-429"].requests.Load(); n > 10 {
		t.Errorf("the server answering 429 got %d requests: its Retry-After (not a number) was not honoured with a backoff", n)
	}
	for _, h := range hs {
		deleteAndWait(t, h.tt)
	}
	checkGlobal(t)
}
