package probe

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// Target is what one probe checks.
type Target struct {
	API jetonv1alpha1.API
	// BaseURL of the API, without the check's path (see internal/publicapi).
	BaseURL string
	// Token is the normalized technical token. It only ever goes into the Authorization header.
	Token string
	// DemarcheNumber is the démarche queried by the Démarches Numériques check.
	DemarcheNumber int64
	// Timeout bounds the whole request, body included.
	Timeout time.Duration
}

// Outcome is the result of one probe request.
type Outcome struct {
	Result
	// Time is when the answer (or the failure) came.
	Time time.Time
	// Latency of the request, body included.
	Latency time.Duration
	// RetryAt is the earliest time the API allows the next request with this token (zero: no wait asked).
	RetryAt time.Time
}

// NewHTTPClient returns the client probes use: no redirects (a token check never redirects,
// and a redirect could carry the Authorization header elsewhere), proxy from the environment,
// TLS 1.2 or later. Per-request timeouts come from the Target.
func NewHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	tr.MaxIdleConnsPerHost = 8
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// checkRequest builds the API's own token check.
func checkRequest(ctx context.Context, t Target) (*http.Request, error) {
	base := strings.TrimRight(t.BaseURL, "/")
	var req *http.Request
	var err error
	switch t.API {
	case jetonv1alpha1.APIEntreprise:
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, base+"/privileges", nil)
	case jetonv1alpha1.APIParticulier:
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/introspect", nil)
	case jetonv1alpha1.DemarchesNumeriques:
		if t.DemarcheNumber < 1 {
			return nil, errors.New("spec.demarcheNumber is required for DemarchesNumeriques")
		}
		// The number is an integer, so inlining it in the query is safe.
		q := fmt.Sprintf(`{"query":"{ demarche(number: %d) { id number } }"}`, t.DemarcheNumber)
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v2/graphql", bytes.NewBufferString(q))
		if req != nil {
			req.Header.Set("Content-Type", "application/json")
		}
	default:
		return nil, fmt.Errorf("unknown API %q", t.API)
	}
	if err != nil {
		// url.Parse errors quote the URL, which never holds the token.
		return nil, fmt.Errorf("invalid base URL: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+t.Token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "jeton-probe")
	return req, nil
}

// Check runs the token check of t once and classifies the answer.
func Check(ctx context.Context, client *http.Client, t Target, now func() time.Time) Outcome {
	if t.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.Timeout)
		defer cancel()
	}
	start := now()
	done := func(r Result) Outcome {
		end := now()
		r.Message = redact(r.Message, t.Token)
		return Outcome{Result: r, Time: end, Latency: end.Sub(start)}
	}
	req, err := checkRequest(ctx, t)
	if err != nil {
		return done(Result{Reason: jetonv1alpha1.ReasonUnexpectedResponse, Message: err.Error()})
	}
	resp, err := client.Do(req)
	if err != nil {
		return done(classifyError(ctx, req.URL, err, t.Timeout))
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil && ctx.Err() != nil {
		return done(classifyError(ctx, req.URL, err, t.Timeout))
	}
	o := done(ClassifyAt(t.API, resp.StatusCode, resp.Header, raw, now()))
	o.RetryAt = RetryAt(resp.Header, o.Time)
	return o
}

// classifyError turns a transport failure into Timeout or Unreachable. The message names
// the host (from spec, bounded by the URL) and the cause in fixed words: transport errors
// may quote what the server sent (a malformed status line, names in its certificate), and
// nothing a server sends reaches a status except parsed numbers.
func classifyError(ctx context.Context, u *url.URL, err error, timeout time.Duration) Result {
	host := u.Host
	var netErr net.Error
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded || (errors.As(err, &netErr) && netErr.Timeout()) {
		return Result{Reason: jetonv1alpha1.ReasonTimeout,
			Message: fmt.Sprintf("no answer from %s within %s", host, timeout)}
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		cause := "the lookup failed"
		if dnsErr.IsNotFound {
			cause = "no such host"
		}
		return Result{Reason: jetonv1alpha1.ReasonUnreachable,
			Message: fmt.Sprintf("cannot resolve %s (%s): check the base URL and the cluster's DNS", u.Hostname(), cause)}
	}
	return Result{Reason: jetonv1alpha1.ReasonUnreachable,
		Message: fmt.Sprintf("cannot reach %s: %s; check the base URL and the egress network policy or proxy", host, transportCause(err))}
}

// transportCause names a transport failure in fixed words.
func transportCause(err error) string {
	var certErr *tls.CertificateVerificationError
	var unknownAuthority x509.UnknownAuthorityError
	var hostnameErr x509.HostnameError
	var invalidCert x509.CertificateInvalidError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.As(err, &certErr), errors.As(err, &unknownAuthority), errors.As(err, &hostnameErr), errors.As(err, &invalidCert):
		return "its TLS certificate is not trusted for this host"
	case errors.As(err, &recordErr), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return "it does not speak TLS"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the connection was closed before an answer"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to the host"
	case strings.Contains(err.Error(), "malformed HTTP"):
		return "its answer is not valid HTTP"
	default:
		return "network error"
	}
}

// redact removes the token from a message. Messages are built without it; this is the
// belt to those braces.
func redact(msg, token string) string {
	if token == "" {
		return msg
	}
	return strings.ReplaceAll(msg, token, "[redacted]")
}
