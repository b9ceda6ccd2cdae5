package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// HandlerOptions configure a Handler.
type HandlerOptions struct {
	Store   *Store
	Limits  *Limits
	Metrics *Metrics
	Log     logr.Logger
	// MaxBodyBytes bounds a request body (Démarches Numériques queries).
	MaxBodyBytes int64
	// BodyReadTimeout bounds the time to read a request body (Démarches Numériques): the
	// server's ReadHeaderTimeout covers headers only, so a body trickled a byte at a time
	// would hold a connection, a goroutine and a buffer forever. 0: DefaultBodyReadTimeout.
	BodyReadTimeout time.Duration
	// UpstreamTimeout bounds the wait for an API's answer headers.
	UpstreamTimeout time.Duration
	// Transport sends requests upstream; nil: NewTransport(UpstreamTimeout).
	Transport http.RoundTripper
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
}

// DefaultBodyReadTimeout is HandlerOptions.BodyReadTimeout's default: a GraphQL query of
// at most --max-body-bytes arrives in far less.
const DefaultBodyReadTimeout = 10 * time.Second

// Handler is the gateway's data plane: it identifies the caller by its gateway credential,
// applies the vendor's rules (rules.go), takes the budgets (limits.go) and streams the
// request to the API with the Habilitation's token, and the answer back.
type Handler struct {
	o     HandlerOptions
	proxy *httputil.ReverseProxy
}

// NewTransport is the gateway's upstream transport: warm connections (many idle ones per
// host: every client's traffic goes to the same few hosts), TLS 1.2 or later, proxy from
// the environment (a vendor's egress proxy), and no redirect ever followed (a Transport
// does not follow them; the answer goes back to the caller as it is).
func NewTransport(upstreamTimeout time.Duration) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	tr.MaxIdleConns = 1024
	tr.MaxIdleConnsPerHost = 256
	tr.ResponseHeaderTimeout = upstreamTimeout
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return tr
}

// NewHandler returns the gateway's handler.
func NewHandler(o HandlerOptions) *Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.BodyReadTimeout <= 0 {
		o.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if o.Transport == nil {
		o.Transport = NewTransport(o.UpstreamTimeout)
	}
	h := &Handler{o: o}
	h.proxy = &httputil.ReverseProxy{
		// Rewrite, not Director: the hop-by-hop headers (those named in Connection too)
		// are removed from the outgoing request before Rewrite runs, so nothing a client
		// lists in Connection can remove what Rewrite sets; and X-Forwarded-* are not added.
		Rewrite:        h.rewrite,
		Transport:      o.Transport,
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.upstreamError,
		// The default error log prints URLs, and API Particulier's queries carry names and
		// birth dates: keep it silent (upstreamError logs what may be logged).
		ErrorLog:   discardLog,
		BufferPool: bufferPool{},
	}
	return h
}

// routed is what a request carries from ServeHTTP to the proxy's hooks.
type routed struct {
	entry *Entry
	route Route
	group RouteGroup
	sent  time.Time
}

type routedKey struct{}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.o.Now()
	rec := &recorder{ResponseWriter: w}
	var entry *Entry
	var reason string
	defer func() { h.account(r, rec, entry, reason, start) }()

	refuse := func(api jetonv1alpha1.API, ref *Refusal, wait time.Duration) {
		reason = ref.Reason
		WriteRefusal(rec, api, ref, wait)
	}
	if ref := CheckFraming(r); ref != nil {
		refuse(jetonv1alpha1.APIEntreprise, ref, 0)
		return
	}
	cred, ref := ExtractCredential(r)
	if ref != nil {
		refuse(jetonv1alpha1.APIEntreprise, ref, 0)
		return
	}
	uid, ok := CredentialUID(cred)
	var key []byte
	if ok {
		entry, key = h.o.Store.Lookup(uid)
	}
	if entry == nil || !VerifyBound(key, cred, uid, entry.Binding) {
		// One answer for unknown, forged, revoked and another key's credentials: the gateway
		// is no oracle of which Habilitations exist.
		entry = nil
		refuse(jetonv1alpha1.APIEntreprise, &Refusal{Status: http.StatusUnauthorized, Reason: "invalid_credential", Code: "JETON_INVALID_CREDENTIAL",
			Message: "The gateway credential is not valid (unknown, revoked or rotated): use the TOKEN of the Secret jeton injected into your namespace, as it is now."}, 0)
		return
	}
	if entry.NotReady != "" {
		refuse(entry.API, &Refusal{Status: http.StatusServiceUnavailable, Reason: "not_ready", Code: "JETON_HABILITATION_NOT_READY", Message: entry.NotReady}, 0)
		return
	}
	route, ref := h.checkRequest(w, r, entry)
	if ref != nil {
		refuse(entry.API, ref, 0)
		return
	}
	group := RouteGroupOf(entry.API, route.Path)
	if ok, wait, why := h.o.Limits.AdmitRoute(entry.API, entry.Host, entry.Fingerprint, group, h.o.Now()); !ok {
		msg := "This client is over its share of the API's limits: retry after the Retry-After delay."
		if why == "upstream_held" {
			msg = "The API asked to wait (429 or Retry-After): the gateway holds every request until then, so that the vendor's address is not banned. Retry after the Retry-After delay."
		}
		refuse(entry.API, &Refusal{Status: http.StatusTooManyRequests, Reason: why, Code: "JETON_RATE_LIMITED", Message: msg}, wait)
		return
	}
	ctx := context.WithValue(r.Context(), routedKey{}, &routed{entry: entry, route: route, group: group})
	h.proxy.ServeHTTP(rec, r.WithContext(ctx))
}

// checkRequest is CheckRequest with the body read under BodyReadTimeout (a read past it
// fails, and the body is refused as unreadable). Once the body is read the deadline is
// lifted, so that nothing read later on the stream times out while the answer streams
// (HTTP/1.1's background read lifts it too). A refused body keeps it, and its HTTP/1.1 connection
// closes after the refusal: net/http would otherwise read the unread rest of the body
// before answering, for as long as the caller trickles it.
func (h *Handler) checkRequest(w http.ResponseWriter, r *http.Request, e *Entry) (Route, *Refusal) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return CheckRequest(r, e.API, e.SIRET, e.AllowMutations, h.o.MaxBodyBytes)
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(h.o.BodyReadTimeout)) // the server's clock, not h.o.Now
	route, ref := CheckRequest(r, e.API, e.SIRET, e.AllowMutations, h.o.MaxBodyBytes)
	if ref != nil {
		if r.ProtoMajor == 1 {
			w.Header().Set("Connection", "close")
		}
		return route, ref
	}
	_ = rc.SetReadDeadline(time.Time{})
	return route, nil
}

// rewrite builds the upstream request from the validated route only: the API's URL, the
// rebuilt query, the allowed headers, and the token, always set by the gateway.
func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	rt := pr.In.Context().Value(routedKey{}).(*routed)
	up := rt.entry.Upstream
	out := pr.Out
	out.Method = rt.route.Method
	out.URL = &url.URL{Scheme: up.Scheme, Host: up.Host, Path: strings.TrimRight(up.Path, "/") + rt.route.Path, RawQuery: rt.route.RawQuery}
	out.Host = up.Host
	out.Header = rt.route.UpstreamHeader(pr.In.Header, rt.entry.API, rt.entry.Token)
	if rt.route.Body != nil {
		body := rt.route.Body
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		out.ContentLength = int64(len(body))
	} else {
		out.Body, out.GetBody, out.ContentLength = nil, nil, 0
	}
	out.TransferEncoding, out.Trailer, out.Close = nil, nil, false
	rt.sent = h.o.Now()
}

// modifyResponse reads the API's limits from its answer before it goes back: a 429 or a
// Retry-After holds the token (and, for a 429, the host) for every later request.
func (h *Handler) modifyResponse(resp *http.Response) error {
	rt := resp.Request.Context().Value(routedKey{}).(*routed)
	now := h.o.Now()
	if resp.StatusCode < 100 || resp.StatusCode > 599 {
		// net/http's client reads any three digits, and its server panics on a WriteHeader
		// below 100: answer 502 rather than pass a status no client understands (and a
		// metric series per invented code).
		return errUpstreamStatus
	}
	h.o.Metrics.UpstreamDuration.WithLabelValues(string(rt.entry.API)).Observe(now.Sub(rt.sent).Seconds())
	h.o.Limits.ObserveRoute(rt.entry.Host, rt.entry.Fingerprint, rt.group, resp.StatusCode, resp.Header, now)
	if resp.StatusCode == http.StatusTooManyRequests {
		h.o.Metrics.Upstream429.WithLabelValues(rt.entry.Host, string(rt.entry.API)).Inc()
	}
	// A cookie set for the vendor's token is not the client's.
	resp.Header.Del("Set-Cookie")
	return nil
}

// errUpstreamStatus: the API answered a status outside 100-599.
var errUpstreamStatus = errors.New("the API answered an invalid HTTP status")

// upstreamError answers a request the API did not answer, without the URL or the error's
// text (which names the URL).
func (h *Handler) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	rt := r.Context().Value(routedKey{}).(*routed)
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the caller went away; nothing to answer
	}
	status, code, msg := http.StatusBadGateway, "JETON_UPSTREAM_UNREACHABLE", "The API did not answer (connection refused, reset or TLS failure); retry later."
	var ne net.Error
	if errors.Is(err, errUpstreamStatus) {
		msg = "The API answered with an invalid HTTP status; retry later."
	} else if errors.As(err, &ne) && ne.Timeout() {
		status, code, msg = http.StatusGatewayTimeout, "JETON_UPSTREAM_TIMEOUT", "The API did not answer in time; retry later."
	}
	if rec, ok := w.(*recorder); ok {
		rec.reason = "upstream_unreachable"
	}
	WriteRefusal(w, rt.entry.API, &Refusal{Status: status, Reason: "upstream_unreachable", Code: code, Message: msg}, 0)
}

// account logs and counts one request: method, Habilitation, status, duration and bytes,
// never a path, a query, a header value or a body.
func (h *Handler) account(r *http.Request, rec *recorder, e *Entry, reason string, start time.Time) {
	if reason == "" {
		reason = rec.reason
	}
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	ns, name, client, api := "", "", "", ""
	if e != nil {
		ns, name, client, api = e.Namespace, e.Name, e.Client, string(e.API)
		h.o.Metrics.Requests.WithLabelValues(ns, name, client, api, strconv.Itoa(status)).Inc()
	}
	if reason != "" {
		h.o.Metrics.Refusals.WithLabelValues(ns, name, client, api, reason).Inc()
	}
	kv := []any{"method", truncate(r.Method, 16), "status", status, "durationMs", float64(h.o.Now().Sub(start).Microseconds()) / 1000, "bytes", rec.bytes}
	if e != nil {
		kv = append(kv, "habilitation", ns+"/"+name, "client", client, "api", api)
	}
	if reason != "" {
		kv = append(kv, "refused", reason)
	}
	h.o.Log.Info("request", kv...)
}

// recorder notes the status and size of an answer as it streams.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	reason string
}

func (r *recorder) WriteHeader(code int) {
	// An informational answer (103 Early Hints, forwarded by the ReverseProxy) comes before
	// the real one: only a final status is the request's.
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController (used by ReverseProxy to flush) reach the writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// bufferPool reuses the 32 KiB copy buffers of streamed answers.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
