package probe

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

func apiErr(code string) string {
	return `{"errors":[{"code":"` + code + `","title":"Interdit","detail":"…","source":{},"meta":{}}]}`
}

func dnErr(message, code string, withNullData bool) string {
	data := ""
	if withNullData {
		data = `"data":null,`
	}
	return `{` + data + `"errors":[{"message":"` + message + `","path":["demarche"],"extensions":{"code":"` + code + `"}}]}`
}

func TestClassify(t *testing.T) {
	const (
		ae = jetonv1alpha1.APIEntreprise
		ap = jetonv1alpha1.APIParticulier
		dn = jetonv1alpha1.DemarchesNumeriques
	)
	html := "<html><body><h1>502 Bad Gateway</h1></body></html>"
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		api        jetonv1alpha1.API
		status     int
		header     http.Header
		body       string
		reason     string
		code       string
		privileges []string
		inMessage  string
	}{
		{"AE healthy", ae, 200, nil, `{"privileges":["unites_legales_etablissements_insee","attestations_fiscales"]}`,
			jetonv1alpha1.ReasonProbeSucceeded, "", []string{"attestations_fiscales", "unites_legales_etablissements_insee"}, "accepted"},
		{"AE healthy with no privileges", ae, 200, nil, `{"privileges":[]}`, jetonv1alpha1.ReasonProbeSucceeded, "", []string{}, ""},
		{"AP healthy", ap, 200, nil, `{"_id":"abc","name":null,"scopes":["cnaf_quotient_familial"]}`,
			jetonv1alpha1.ReasonProbeSucceeded, "", []string{"cnaf_quotient_familial"}, ""},
		{"DN healthy", dn, 200, nil, `{"data":{"demarche":{"id":"UHJvY2VkdXJlLTE=","number":1}}}`,
			jetonv1alpha1.ReasonProbeSucceeded, "", nil, ""},
		{"AE 200 not JSON", ae, 200, nil, html, jetonv1alpha1.ReasonUnexpectedResponse, "", nil, "base URL"},
		{"AE 200 empty", ae, 200, nil, "", jetonv1alpha1.ReasonUnexpectedResponse, "", nil, "base URL"},
		{"AE 200 JSON without privileges", ae, 200, nil, `{"status":"ok"}`, jetonv1alpha1.ReasonUnexpectedResponse, "", nil, "privileges"},
		{"AP 200 without scopes", ap, 200, nil, `{"privileges":[]}`, jetonv1alpha1.ReasonUnexpectedResponse, "", nil, "scopes"},

		{"AE 401 00101 invalid", ae, 401, nil, apiErr("00101"), jetonv1alpha1.ReasonUnauthorized, "00101", nil, "00101"},
		{"AE 401 00103 expired", ae, 401, nil, apiErr("00103"), jetonv1alpha1.ReasonExpired, "00103", nil, "renew"},
		{"AE 401 00105 revoked", ae, 401, nil, apiErr("00105"), jetonv1alpha1.ReasonRevoked, "00105", nil, "revoked"},
		{"AE 401 unknown code", ae, 401, nil, apiErr("09999"), jetonv1alpha1.ReasonUnauthorized, "09999", nil, ""},
		{"AE 401 empty body", ae, 401, nil, "", jetonv1alpha1.ReasonUnauthorized, "", nil, "401"},
		{"AE 401 HTML body", ae, 401, nil, html, jetonv1alpha1.ReasonUnauthorized, "", nil, ""},
		{"AP 401 00101", ap, 401, nil, apiErr("00101"), jetonv1alpha1.ReasonUnauthorized, "00101", nil, ""},
		{"AP 401 00103", ap, 401, nil, apiErr("00103"), jetonv1alpha1.ReasonExpired, "00103", nil, ""},
		{"AP 401 00105", ap, 401, nil, apiErr("00105"), jetonv1alpha1.ReasonRevoked, "00105", nil, ""},
		{"AE 403 00100 insufficient", ae, 403, nil, apiErr("00100"), jetonv1alpha1.ReasonInsufficientPrivileges, "00100", nil, "privileges"},
		{"AP 403 00100 insufficient", ap, 403, nil, apiErr("00100"), jetonv1alpha1.ReasonInsufficientPrivileges, "00100", nil, ""},
		{"AE 403 no body is an auth failure", ae, 403, nil, "", jetonv1alpha1.ReasonUnauthorized, "", nil, "403"},

		{"DN 403 forbidden", dn, 403, nil, dnErr("Invalid or revoked token", "forbidden", false), jetonv1alpha1.ReasonUnauthorized, "forbidden", nil, "invalid or revoked"},
		{"DN 401 token expired", dn, 401, nil, dnErr("Token expired", "unauthorized", false), jetonv1alpha1.ReasonExpired, "unauthorized", nil, "expired"},
		{"DN 401 other", dn, 401, nil, dnErr("Unauthenticated", "unauthorized", false), jetonv1alpha1.ReasonUnauthorized, "unauthorized", nil, ""},
		{"DN 200 out of scope", dn, 200, nil, dnErr("An object of type Demarche was hidden due to permissions", "unauthorized", true),
			jetonv1alpha1.ReasonInsufficientPrivileges, "unauthorized", nil, "demarcheNumber"},
		{"DN 200 unknown démarche", dn, 200, nil, dnErr("Demarche not found", "not_found", true),
			jetonv1alpha1.ReasonUnexpectedResponse, "not_found", nil, "démarche number"},
		{"DN 200 data without démarche", dn, 200, nil, `{"data":{"demarche":null}}`, jetonv1alpha1.ReasonUnexpectedResponse, "", nil, "demarcheNumber"},
		{"DN 429", dn, 429, http.Header{"Retry-After": {"60"}}, dnErr("Too many requests", "too_many_requests", false),
			jetonv1alpha1.ReasonRateLimited, "too_many_requests", nil, "asked to wait 60s;"},

		{"AE 429 with body", ae, 429, http.Header{"Retry-After": {"32"}}, apiErr("00429"), jetonv1alpha1.ReasonRateLimited, "00429", nil, "asked to wait 32s;"},
		{"AE 429 empty body", ae, 429, http.Header{"Retry-After": {"32"}}, "", jetonv1alpha1.ReasonRateLimited, "", nil, "429"},
		{"AE 429 no Retry-After", ae, 429, nil, "", jetonv1alpha1.ReasonRateLimited, "", nil, "backs off"},
		{"AE 429 Retry-After HTTP date", ae, 429, http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, "",
			jetonv1alpha1.ReasonRateLimited, "", nil, "asked to wait 90s;"},
		{"AE 429 RateLimit-Reset epoch", ae, 429, http.Header{"Ratelimit-Remaining": {"0"}, "Ratelimit-Reset": {strconv.FormatInt(now.Unix()+45, 10)}}, "",
			jetonv1alpha1.ReasonRateLimited, "", nil, "asked to wait 45s;"},
		{"AE 429 Retry-After garbage", ae, 429, http.Header{"Retry-After": {"soon"}}, "", jetonv1alpha1.ReasonRateLimited, "", nil, "asked to wait;"},

		// Hostile answers: only scope-shaped names and plain codes get through.
		{"AE privileges echoing a token", ae, 200, nil, `{"privileges":["attestations_fiscales","` + jwtLike + `"]}`,
			jetonv1alpha1.ReasonProbeSucceeded, "", []string{"attestations_fiscales"}, "1 unexpected privilege names ignored"},
		{"AP scopes with control characters and duplicates", ap, 200, nil, `{"scopes":["b","a\u0000","b","A","a"]}`,
			jetonv1alpha1.ReasonProbeSucceeded, "", []string{"a", "b"}, "2 unexpected scope names ignored"},
		{"AE mixed-case code is not a code", ae, 401, nil, apiErr("Zk8sJ2m9QxW4vT7y"), jetonv1alpha1.ReasonUnauthorized, "", nil, "(401)"},
		{"AE letters-and-digits code is not a code", ae, 401, nil, apiErr("abc123def456"), jetonv1alpha1.ReasonUnauthorized, "", nil, "(401)"},
		{"DN upper-case GraphQL code", dn, 403, nil, dnErr("x", "UNAUTHENTICATED", false), jetonv1alpha1.ReasonUnauthorized, "UNAUTHENTICATED", nil, "(403 (code UNAUTHENTICATED))"},

		{"AE 500 HTML", ae, 500, nil, html, jetonv1alpha1.ReasonServerError, "", nil, "500"},
		{"AE 502", ae, 502, nil, html, jetonv1alpha1.ReasonServerError, "", nil, "502"},
		{"DN 503", dn, 503, nil, "", jetonv1alpha1.ReasonServerError, "", nil, "503"},
		{"AE 409 00015 conflict", ae, 409, nil, apiErr("00015"), jetonv1alpha1.ReasonUnexpectedResponse, "00015", nil, "already in progress"},
		{"AE 404", ae, 404, nil, html, jetonv1alpha1.ReasonUnexpectedResponse, "", nil, "base URL"},
		{"AE 302", ae, 302, http.Header{"Location": {"https://login.example/"}}, "", jetonv1alpha1.ReasonUnexpectedResponse, "", nil, "redirect"},
		{"AE 422", ae, 422, nil, apiErr("00201"), jetonv1alpha1.ReasonUnexpectedResponse, "00201", nil, "422"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ClassifyAt(tt.api, tt.status, tt.header, []byte(tt.body), now)
			if got.Reason != tt.reason {
				t.Errorf("reason = %q, want %q (message %q)", got.Reason, tt.reason, got.Message)
			}
			if got.Code != tt.code {
				t.Errorf("code = %q, want %q", got.Code, tt.code)
			}
			if got.HTTPStatus != tt.status {
				t.Errorf("httpStatus = %d, want %d", got.HTTPStatus, tt.status)
			}
			if !slices.Equal(got.Privileges, tt.privileges) {
				t.Errorf("privileges = %q, want %q", got.Privileges, tt.privileges)
			}
			if got.Message == "" || !strings.Contains(got.Message, tt.inMessage) {
				t.Errorf("message %q should contain %q", got.Message, tt.inMessage)
			}
			if got.Succeeded() != (tt.reason == jetonv1alpha1.ReasonProbeSucceeded) {
				t.Errorf("Succeeded() = %v for reason %q", got.Succeeded(), got.Reason)
			}
		})
	}
}

// jwtLike is shaped like a token; it is no real token.
const jwtLike = "eyJhbGciOiJIUzI1NiJ9.eyJqdGkiOiJ4In0.c2lnbmF0dXJl"

// The API's own text (French, and possibly echoing the request) never goes into a message.
func TestClassifyDoesNotCopyBody(t *testing.T) {
	body := `{"errors":[{"code":"00101","title":"Interdit","detail":"token eyJhbGciOi.secret rejected"}]}`
	got := Classify(jetonv1alpha1.APIEntreprise, 401, nil, []byte(body))
	if strings.Contains(got.Message, "eyJ") || strings.Contains(got.Message, "secret") {
		t.Fatalf("message copies the body: %q", got.Message)
	}
}

// Headers reach a message only as parsed numbers: a value that does not parse, whatever
// it holds, leaves no trace.
func TestClassifyDoesNotCopyHeaders(t *testing.T) {
	for _, v := range []string{jwtLike, "Bearer " + jwtLike, "32 " + jwtLike, "soon\nlevel=error", "\x00\x00", "Sun, 01 Mar 2026 12:00:00 GMT " + jwtLike} {
		header := http.Header{"Retry-After": {v}, "Ratelimit-Remaining": {"0"}, "Ratelimit-Reset": {v}}
		got := Classify(jetonv1alpha1.APIEntreprise, 429, header, nil)
		if strings.Contains(got.Message, "eyJ") || strings.Contains(got.Message, "Bearer") || strings.Contains(got.Message, "level=") {
			t.Errorf("message copies a header: %q", got.Message)
		}
		if !strings.Contains(got.Message, "the API asked to wait;") {
			t.Errorf("message %q should say the API asked to wait, without a value", got.Message)
		}
	}
}

// GraphQL error messages are the API's words, and may echo the request: never copied.
func TestClassifyDoesNotCopyGraphQLMessages(t *testing.T) {
	for _, status := range []int{200, 401, 403, 429, 500} {
		got := Classify(jetonv1alpha1.DemarchesNumeriques, status, nil, []byte(dnErr("Token "+jwtLike+" expired", "unauthorized", status == 200)))
		if strings.Contains(got.Message, "eyJ") {
			t.Errorf("%d: message copies the GraphQL message: %q", status, got.Message)
		}
	}
}

func TestRetryAt(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header http.Header
		want   time.Time
	}{
		{"nothing", http.Header{}, time.Time{}},
		{"Retry-After seconds", http.Header{"Retry-After": {"32"}}, now.Add(32 * time.Second)},
		{"Retry-After zero", http.Header{"Retry-After": {"0"}}, time.Time{}},
		{"Retry-After HTTP date", http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, now.Add(90 * time.Second)},
		{"Retry-After date in the past", http.Header{"Retry-After": {now.Add(-time.Minute).Format(http.TimeFormat)}}, time.Time{}},
		{"Retry-After garbage", http.Header{"Retry-After": {"soon"}}, time.Time{}},
		{"Retry-After huge is capped", http.Header{"Retry-After": {"999999999"}}, now.Add(maxServerWait)},
		{"remaining 0 with epoch reset", http.Header{"Ratelimit-Remaining": {"0"}, "Ratelimit-Reset": {"1772366445"}}, time.Unix(1772366445, 0)},
		{"remaining 0 with delta reset", http.Header{"Ratelimit-Remaining": {"0"}, "Ratelimit-Reset": {"20"}}, now.Add(20 * time.Second)},
		{"remaining left: reset ignored", http.Header{"Ratelimit-Remaining": {"12"}, "Ratelimit-Reset": {"1772366445"}}, time.Time{}},
		{"the later of both", http.Header{"Retry-After": {"5"}, "Ratelimit-Remaining": {"0"}, "Ratelimit-Reset": {"20"}}, now.Add(20 * time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RetryAt(tt.header, now); !got.Equal(tt.want) {
				t.Errorf("RetryAt = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNextProbe(t *testing.T) {
	last := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	interval := 5 * time.Minute

	if got := NextProbe("uid", nil, interval, time.Time{}); !got.IsZero() {
		t.Errorf("never probed: due %v, want now (zero)", got)
	}
	due := NextProbe("uid", &last, interval, time.Time{})
	if due.Before(last.Add(interval)) || !due.Before(last.Add(interval+interval/10)) {
		t.Errorf("due %v outside [last+interval, last+interval*1.1)", due)
	}
	if again := NextProbe("uid", &last, interval, time.Time{}); !again.Equal(due) {
		t.Errorf("not deterministic: %v then %v", due, again)
	}
	held := last.Add(time.Hour)
	if got := NextProbe("uid", &last, interval, held); !got.Equal(held) {
		t.Errorf("rate limit not honoured: due %v, want %v", got, held)
	}
	if got := NextProbe("uid", nil, interval, held); !got.Equal(held) {
		t.Errorf("first probe ignores rate limit: due %v, want %v", got, held)
	}
}

// Jitter spreads tokens created together instead of probing them in step.
func TestJitterSpreads(t *testing.T) {
	last := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	interval := 5 * time.Minute
	seen := map[time.Duration]bool{}
	for i := range 100 {
		j := Jitter(string(rune('a'+i%26))+string(rune('a'+i/26)), last, interval)
		if j < 0 || j >= interval/10 {
			t.Fatalf("jitter %v outside [0, %v)", j, interval/10)
		}
		seen[j] = true
	}
	if len(seen) < 90 {
		t.Errorf("only %d distinct jitters for 100 tokens", len(seen))
	}
	if Jitter("x", last, 0) != 0 {
		t.Error("zero interval must give zero jitter")
	}
}
