package probe

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/sanitize"
)

// fuzzToken stands for the token that was sent with the probe. Classify never sees it, but
// an API, a proxy or an attacker-controlled base URL can echo it back in a body or header:
// whatever they echo must not reach a message or a code, which land in status and events.
const fuzzToken = "eyJhbGciOiJIUzI1NiJ9.eyJqdGkiOiJmdXp6In0.c2VjcmV0LXNpZ25hdHVyZS1mdXp6LXRva2Vu"

// fuzzSecret is the part of fuzzToken that is actually secret: a JWT's header is public
// ("eyJhbGciOi..." is in every JWT), its signature is not.
const fuzzSecret = "c2VjcmV0LXNpZ25hdHVyZS1mdXp6LXRva2Vu"

var fuzzAPIs = []jetonv1alpha1.API{jetonv1alpha1.APIEntreprise, jetonv1alpha1.APIParticulier, jetonv1alpha1.DemarchesNumeriques}

// classifyReasons are the reasons an answer can be classified as; Unreachable, Timeout and
// InternalError are for requests that got no answer, never for Classify.
var classifyReasons = []string{
	jetonv1alpha1.ReasonProbeSucceeded,
	jetonv1alpha1.ReasonNetworkNotAllowed,
	jetonv1alpha1.ReasonUnauthorized,
	jetonv1alpha1.ReasonExpired,
	jetonv1alpha1.ReasonRevoked,
	jetonv1alpha1.ReasonInsufficientPrivileges,
	jetonv1alpha1.ReasonRateLimited,
	jetonv1alpha1.ReasonServerError,
	jetonv1alpha1.ReasonUnexpectedResponse,
}

// classifySeed is one answer: the API (index in fuzzAPIs), the status, Retry-After, the body.
type classifySeed struct {
	api        uint8
	status     int
	retryAfter string
	body       string
}

// classifySeeds returns real answers of the three APIs, answers that echo the token, and
// oddities: the seeds of both fuzz targets.
func classifySeeds() []classifySeed {
	const (
		ae = 0
		ap = 1
		dn = 2
	)
	html502 := "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
	return []classifySeed{
		// API Entreprise GET /privileges.
		{ae, 200, "", `{"privileges":["unites_legales_etablissements_insee","attestations_fiscales","attestations_sociales"]}`},
		{ae, 200, "", `{"privileges":[]}`},
		{ae, 401, "", `{"errors":[{"code":"00101","title":"Interdit","detail":"Votre token n'est pas valide ou n'est pas renseigné","source":{},"meta":{}}]}`},
		{ae, 401, "", `{"errors":[{"code":"00103","title":"Interdit","detail":"Votre token est expiré","source":{},"meta":{}}]}`},
		{ae, 401, "", `{"errors":[{"code":"00105","title":"Interdit","detail":"Votre token a été banni","source":{},"meta":{}}]}`},
		{ae, 403, "", `{"errors":[{"code":"00100","title":"Privilèges insuffisants","detail":"Votre token est valide mais vos privilèges sont insuffisants","source":{},"meta":{}}]}`},
		{ae, 409, "", `{"errors":[{"code":"00015","title":"Conflit","detail":"Une requête identique est en cours","source":{},"meta":{}}]}`},
		{ae, 429, "32", ``}, // staging: empty body, only Retry-After
		{ae, 429, "60", `{"errors":[{"code":"00429","title":"Trop de requêtes","detail":"Vous avez effectué trop de requêtes","source":{},"meta":{}}]}`},
		{ae, 429, "", `{"errors":[{"code":"00429"}]}`},
		{ae, 502, "", html502},
		{ae, 500, "", `Internal Server Error`},
		{ae, 503, "120", `{"status":"bad_gateway","last_update":"2026-03-01T12:00:00Z","last_ok_status":"2026-03-01T11:00:00Z"}`},
		// API Particulier GET /api/introspect.
		{ap, 200, "", `{"_id":"0d8b3a52-6b1c-4f5b-9b59-2c3e4c1d9e10","name":null,"scopes":["cnaf_quotient_familial","dgfip_avis_imposition"]}`},
		{ap, 401, "", `{"errors":[{"code":"00101","title":"Interdit","detail":"Votre jeton d'API n'a pas été trouvé"}]}`},
		{ap, 429, "1", ``},
		// Démarches Numériques GraphQL.
		{dn, 200, "", `{"data":{"demarche":{"id":"UHJvY2VkdXJlLTQyMQ==","number":421}}}`},
		{dn, 200, "", `{"data":null,"errors":[{"message":"An object of type Demarche was hidden due to permissions","locations":[{"line":1,"column":3}],"path":["demarche"],"extensions":{"code":"unauthorized"}}]}`},
		{dn, 200, "", `{"data":null,"errors":[{"message":"Demarche not found","path":["demarche"],"extensions":{"code":"not_found"}}]}`},
		{dn, 200, "", `{"data":{"demarche":null}}`},
		{dn, 401, "", `{"errors":[{"message":"Token expired","extensions":{"code":"unauthorized"}}]}`},
		{dn, 403, "", `{"errors":[{"message":"Without a token, only persisted queries are allowed","extensions":{"code":"forbidden"}}]}`},
		{dn, 429, "60", `{"errors":[{"message":"Too many requests","extensions":{"code":"too_many_requests"}}]}`},
		{dn, 502, "", html502},
		// The published backends' answers (internal/fidelity, docs/api-fidelity.md), and
		// hostile variations of their new shapes.
		{ae, 200, "", `{"data":{"privileges":["attestations_fiscales","unites_legales_etablissements_insee"]}}`},
		{ae, 200, "", `{"data":{"privileges":null},"privileges":"x"}`},
		{ae, 403, "", `{"errors":[{"code":"00107","title":"Adresse IP non autorisée","detail":"Votre adresse IP n'est pas autorisée à utiliser ce jeton.","source":{"header":"X-Forwarded-For"},"meta":{}}]}`},
		{ap, 200, "", `{"_id":"0d8b3a52-6b1c-4f5b-9b59-2c3e4c1d9e10","name":"","scopes":["cnaf_quotient_familial"]}`},
		{ap, 401, "", `{"error":"access_denied","reason":"Votre token n'est pas valide ou n'est pas renseigné","message":"Votre token n'est pas valide ou n'est pas renseigné"}`},
		{ap, 401, "", `{"errors":["Votre token est expiré. Vous devez refaire une demande à API Particulier"]}`},
		{ap, 401, "", `{"error":"` + fuzzToken + `","message":"` + fuzzToken + `"}`},
		{ap, 401, "", `{"errors":["` + fuzzToken + ` expiré"]}`},
		{dn, 403, "", `{"errors":[{"message":"Request issued from a forbidden network. Add 192.0.2.1/32 to your allowed adresses in your /profil","extensions":{"code":"forbidden"}}],"data":null}`},
		{dn, 403, "", `{"errors":[{"message":"Request issued from a forbidden network. Add ` + fuzzToken + ` to your allowed adresses","extensions":{"code":"forbidden"}}],"data":null}`},
		{dn, 429, "", "Calme toi, cowboy ! T'enchaines un peu trop les requêtes. Respire un peu réessaie dans un petit moment.\nCalm down, cowboy! You're making too many requests. Take a breather and try again soon.\n"},
		// Answers that echo the token, as a misconfigured proxy or a hostile base URL may.
		{ae, 401, "", `{"errors":[{"code":"00101","title":"Interdit","detail":"Bearer ` + fuzzToken + ` rejected"}]}`},
		{ae, 401, "", `{"errors":[{"code":"` + fuzzToken + `"}]}`},
		{dn, 403, "", `{"errors":[{"message":"` + fuzzToken + `","extensions":{"code":"` + fuzzSecret + `"}}]}`},
		{dn, 200, "", `{"data":null,"errors":[{"message":"x","extensions":{"code":"` + fuzzToken + `"}}]}`},
		{ae, 429, fuzzToken, ``},
		{ae, 400, "", `<pre>Authorization: Bearer ` + fuzzToken + `</pre>`},
		// Oddities.
		{ae, 200, "", `null`},
		{ap, 200, "", `{"scopes":null}`},
		{ae, 0, "", ``},
		{ae, 999, "", `{}`},
		{ae, 301, "", ``},
		{ae, 401, "", `{"errors":[{"code":"00101\n\u001b[31mfake log line"}]}`},
	}
}

// FuzzClassify feeds Classify real answers of the three APIs (and mutations of them) and
// checks what TechnicalToken status, events and alerts rely on.
func FuzzClassify(f *testing.F) {
	for _, s := range classifySeeds() {
		f.Add(s.api, s.status, s.retryAfter, []byte(s.body))
	}

	f.Fuzz(func(t *testing.T, apiIndex uint8, status int, retryAfter string, raw []byte) {
		api := fuzzAPIs[int(apiIndex)%len(fuzzAPIs)]
		header := http.Header{}
		if retryAfter != "" {
			header.Set("Retry-After", retryAfter)
		}
		r := Classify(api, status, header, raw)

		if !slices.Contains(classifyReasons, r.Reason) {
			t.Fatalf("reason %q is not one of the documented probe reasons %v", r.Reason, classifyReasons)
		}
		if r.HTTPStatus != status {
			t.Errorf("httpStatus = %d, want %d", r.HTTPStatus, status)
		}
		if r.Message == "" {
			t.Error("empty message: users need to know what to do")
		}
		// Message and code go into status, events and logs.
		for field, v := range map[string]string{"message": r.Message, "code": r.Code} {
			if strings.Contains(v, fuzzSecret) {
				t.Errorf("%s contains the token: %q", field, v)
			}
			if !utf8.ValidString(v) {
				t.Errorf("%s is not valid UTF-8: %q", field, v)
			}
			if i := strings.IndexFunc(v, unicode.IsControl); i >= 0 {
				t.Errorf("%s holds a control character at %d: %q", field, i, v)
			}
		}

		switch {
		case status == http.StatusTooManyRequests:
			if r.Reason != jetonv1alpha1.ReasonRateLimited {
				t.Errorf("429 classified %s, want RateLimited (a probe that ignores 429s gets the IP banned)", r.Reason)
			}
		case status >= 500:
			if r.Reason != jetonv1alpha1.ReasonServerError {
				t.Errorf("%d classified %s, want ServerError", status, r.Reason)
			}
		case status == http.StatusUnauthorized:
			// API Particulier v2 answers insufficient privileges with 401 access_denied.
			if !slices.Contains([]string{jetonv1alpha1.ReasonUnauthorized, jetonv1alpha1.ReasonExpired, jetonv1alpha1.ReasonRevoked, jetonv1alpha1.ReasonInsufficientPrivileges}, r.Reason) {
				t.Errorf("401 classified %s, want an authentication failure", r.Reason)
			}
		case status == http.StatusForbidden:
			if !slices.Contains([]string{jetonv1alpha1.ReasonUnauthorized, jetonv1alpha1.ReasonInsufficientPrivileges, jetonv1alpha1.ReasonNetworkNotAllowed}, r.Reason) {
				t.Errorf("403 classified %s, want an authentication failure", r.Reason)
			}
		}

		if r.Succeeded() {
			if status != http.StatusOK {
				t.Fatalf("status %d classified as success", status)
			}
			if !json.Valid(raw) {
				t.Fatalf("a body that is not JSON classified as success: %q", raw)
			}
			checkSuccessBody(t, api, raw, r)
		} else if r.Privileges != nil {
			t.Errorf("privileges %q reported for a failed check", r.Privileges)
		}
		// A 200 with the body each API documents for a valid token is a success, nothing else.
		if status == http.StatusOK && validSuccessBody(api, raw) && !r.Succeeded() {
			t.Errorf("a valid 200 answer classified %s: %s", r.Reason, r.Message)
		}
	})
}

// checkSuccessBody checks that a success is backed by what the API documents for a valid
// token, and that the reported privileges are the API's own.
func checkSuccessBody(t *testing.T, api jetonv1alpha1.API, raw []byte, r Result) {
	t.Helper()
	var b map[string]json.RawMessage
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatalf("success on a body that is not a JSON object: %v", err)
	}
	// The privileges are the API's own, filtered: the scope-shaped names of the answer.
	switch api {
	case jetonv1alpha1.APIEntreprise:
		privileges := documentedPrivileges(raw)
		want, dropped := sanitize.ScopeNames(privileges)
		if privileges == nil || !slices.Equal(r.Privileges, want) || r.IgnoredPrivileges != dropped {
			t.Errorf("success with privileges %q (%d ignored), body says %q", r.Privileges, r.IgnoredPrivileges, privileges)
		}
	case jetonv1alpha1.APIParticulier:
		scopes := documentedScopes(raw)
		want, dropped := sanitize.ScopeNames(scopes)
		if scopes == nil || !slices.Equal(r.Privileges, want) || r.IgnoredPrivileges != dropped {
			t.Errorf("success with privileges %q (%d ignored), body says scopes %q", r.Privileges, r.IgnoredPrivileges, scopes)
		}
	case jetonv1alpha1.DemarchesNumeriques:
		if !validSuccessBody(api, raw) {
			t.Errorf("success without a démarche in data or with errors: %q", raw)
		}
	}
}

// documentedPrivileges is API Entreprise's privileges list as the backends give it: at the
// top level (legacy), or else under data (siade's current controller); nil when neither is
// a list of strings. Keys match as encoding/json matches struct fields (case-insensitively),
// as the classification reads them.
func documentedPrivileges(raw []byte) []string {
	var b struct {
		Privileges json.RawMessage `json:"privileges"`
		Data       json.RawMessage `json:"data"`
	}
	if json.Unmarshal(raw, &b) != nil {
		return nil
	}
	var l []string
	if json.Unmarshal(b.Privileges, &l) == nil && l != nil {
		return l
	}
	var data struct {
		Privileges json.RawMessage `json:"privileges"`
	}
	if json.Unmarshal(b.Data, &data) == nil && json.Unmarshal(data.Privileges, &l) == nil && l != nil {
		return l
	}
	return nil
}

// documentedScopes is API Particulier's scopes list, read as documentedPrivileges reads.
func documentedScopes(raw []byte) []string {
	var b struct {
		Scopes json.RawMessage `json:"scopes"`
	}
	var l []string
	if json.Unmarshal(raw, &b) != nil || json.Unmarshal(b.Scopes, &l) != nil {
		return nil
	}
	return l
}

// validSuccessBody reports whether raw is, by the API's documentation, the answer to a
// valid token: a privileges list, a scopes list, or a démarche and no errors.
func validSuccessBody(api jetonv1alpha1.API, raw []byte) bool {
	switch api {
	case jetonv1alpha1.APIEntreprise:
		return documentedPrivileges(raw) != nil
	case jetonv1alpha1.APIParticulier:
		return documentedScopes(raw) != nil
	default:
		var b struct {
			Data *struct {
				Demarche *struct {
					ID string `json:"id"`
				} `json:"demarche"`
			} `json:"data"`
			Errors []json.RawMessage `json:"errors"`
		}
		return json.Unmarshal(raw, &b) == nil && b.Data != nil && b.Data.Demarche != nil && len(b.Errors) == 0
	}
}

// maxMessageLen bounds a message: messages must not grow with the answer.
const maxMessageLen = 512

// FuzzClassifyNeverEchoes feeds Classify answers of any shape, size and content, headers
// included, and checks that nothing of them reaches a Result except what DESIGN.md §6
// allows: scope-shaped privilege names within the bound, a code of the documented shape,
// and, in the message, numbers. Every other piece of the message must be our own words:
// its letters words of classify.go's string literals (or of http.StatusText), its other
// characters digits or punctuation of those literals.
func FuzzClassifyNeverEchoes(f *testing.F) {
	for _, s := range classifySeeds() {
		f.Add(s.api, s.status, s.retryAfter, "", "", []byte(s.body))
	}
	list := func(names ...string) string {
		b, _ := json.Marshal(map[string][]string{"privileges": names})
		return string(b)
	}
	many := make([]string, 10_000)
	for i := range many {
		many[i] = fmt.Sprintf("scope_%d", i%5000) // 5,000 names, each twice
	}
	mib := strings.Repeat("a", 1<<20)
	hostile := []struct {
		api                          uint8
		status                       int
		retryAfter, remaining, reset string
		body                         string
	}{
		// Privileges that echo the token, or are not names at all.
		{0, 200, "", "", "", list("attestations_fiscales", fuzzToken, fuzzSecret, "Bearer "+fuzzToken)},
		{1, 200, "", "", "", `{"_id":"x","name":null,"scopes":["cnaf_quotient_familial","` + fuzzToken + `"]}`},
		{0, 200, "", "", "", list("a\x00b", "\x00", "scope\nlevel=error msg=forged", "\x1b[31mred", "d7e9c9f4c3ca00caadde31f50fd4521a")},
		{0, 200, "", "", "", `{"privileges":["a\u0000b","\u0000","\ud800","é"]}`},
		// Huge answers: 10,000 privileges, a 1 MiB name, a 1 MiB body.
		{0, 200, "", "", "", list(many...)},
		{1, 200, "", "", "", `{"scopes":` + list(many...)[len(`{"privileges":`):]},
		{0, 200, "", "", "", list(mib)},
		{0, 500, "", "", "", mib},
		{2, 401, "", "", "", `{"errors":[{"message":"` + mib + `","extensions":{"code":"unauthorized"}}]}`},
		// Headers that are no numbers: a token, a token after a number, NUL bytes.
		{0, 429, fuzzToken, "0", fuzzToken, ""},
		{0, 429, "32 " + fuzzToken, "", "", ""},
		{0, 429, "\x00\x00\x00\x00\x00\x00\x00\x00", "0", "\x00", "\x00\x00\x00"},
		{2, 429, time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Format(http.TimeFormat), "0", "1772366445", ""},
		{0, 429, "", "0", "20", `{"errors":[{"code":"00429"}]}`},
		// Codes of the wrong shape.
		{0, 401, "", "", "", `{"errors":[{"code":"Zk8sJ2m9QxW4vT7yR1pL6nB3"}]}`},
		{2, 403, "", "", "", `{"errors":[{"message":"` + fuzzToken + `","extensions":{"code":"forbidden` + "\\n" + `"}}]}`},
	}
	for _, h := range hostile {
		f.Add(h.api, h.status, h.retryAfter, h.remaining, h.reset, []byte(h.body))
	}

	vocab := classifyVocabulary(f)
	codeShape := regexp.MustCompile(CodePattern)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, apiIndex uint8, status int, retryAfter, remaining, reset string, raw []byte) {
		api := fuzzAPIs[int(apiIndex)%len(fuzzAPIs)]
		header := http.Header{}
		for k, v := range map[string]string{"Retry-After": retryAfter, "RateLimit-Remaining": remaining, "RateLimit-Reset": reset} {
			if v != "" {
				header[k] = []string{v} // as sent, not canonicalised by Set
			}
		}
		r := ClassifyAt(api, status, header, raw, now)

		if len(r.Privileges) > sanitize.MaxScopes {
			t.Errorf("%d privileges, more than %d", len(r.Privileges), sanitize.MaxScopes)
		}
		for i, p := range r.Privileges {
			if !sanitize.IsScopeName(p) {
				t.Errorf("privilege %.80q is not shaped like a scope name", shown(p))
			}
			if i > 0 && r.Privileges[i-1] >= p {
				t.Errorf("privileges are not sorted and unique at %d", i)
			}
		}
		if r.Code != "" && (len(r.Code) > maxCodeLen || !codeShape.MatchString(r.Code)) {
			t.Errorf("code %.80q does not match %s", shown(r.Code), CodePattern)
		}
		if len(r.Message) > maxMessageLen {
			t.Errorf("message is %d bytes: it grows with the answer", len(r.Message))
		}
		// The code is checked above (messages quote it as "code <code>"); what is left must
		// be our own words and numbers.
		msg := r.Message
		if r.Code != "" {
			msg = strings.ReplaceAll(msg, "code "+r.Code, "code ")
		}
		if piece := vocab.foreign(msg); piece != "" {
			t.Errorf("message holds %.40q, which is not jeton's own words: %.300q", shown(piece), shown(r.Message))
		}
		// Said plainly (the check above implies it): no input longer than 6 bytes appears
		// verbatim in the message, unless it is a piece of our own text. The letters at
		// either end may be parts of our words ("ernal S" is in "Internal Server Error").
		for name, v := range map[string]string{"body": string(raw), "Retry-After": retryAfter, "RateLimit-Remaining": remaining, "RateLimit-Reset": reset} {
			inner := strings.TrimRightFunc(strings.TrimLeftFunc(v, unicode.IsLetter), unicode.IsLetter)
			if len(v) > 6 && vocab.foreign(inner) != "" && strings.Contains(r.Message, v) {
				t.Errorf("message copies the %s: %.300q", name, shown(r.Message))
			}
		}
	})
}

// shown hides the seeds' token in a failure report: test output never shows a token,
// even a fake one.
func shown(s string) string {
	return strings.NewReplacer(fuzzToken, "[fuzzToken]", fuzzSecret, "[fuzzSecret]").Replace(s)
}

// vocabulary is what a message may be made of besides numbers and the code.
type vocabulary struct {
	words map[string]bool // runs of letters
	other map[rune]bool   // characters that are neither letters nor digits
}

// foreign returns the first piece of s that is not in the vocabulary: a run of letters
// that is not one of its words, or a character that is neither a digit nor one of its
// punctuation characters. It returns "" when s is all vocabulary.
func (v vocabulary) foreign(s string) string {
	word := strings.Builder{}
	for _, r := range s + " " { // the space ends the last word
		if unicode.IsLetter(r) {
			word.WriteRune(r)
			continue
		}
		if w := word.String(); w != "" && !v.words[w] {
			return w
		}
		word.Reset()
		if !('0' <= r && r <= '9') && !v.other[r] {
			return string(r)
		}
	}
	return ""
}

var (
	vocabOnce sync.Once
	vocab     vocabulary
)

// formatVerb matches the fmt verbs of a format string, which are not words of a message.
var formatVerb = regexp.MustCompile(`%[-+# 0-9.]*[a-zA-Z%]`)

// classifyVocabulary collects the words and punctuation of the message texts of
// classify.go (its string literals that hold a space, or are one word: not the header
// names, struct tags and patterns), and of the HTTP status texts, which messages quote.
func classifyVocabulary(tb testing.TB) vocabulary {
	vocabOnce.Do(func() {
		vocab = vocabulary{words: map[string]bool{}, other: map[rune]bool{' ': true}}
		file, err := parser.ParseFile(token.NewFileSet(), "classify.go", nil, 0)
		if err != nil {
			tb.Fatal(err)
		}
		var texts []string
		ast.Inspect(file, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				s, err := strconv.Unquote(lit.Value)
				oneWord := s != "" && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsLetter(r) }) < 0
				if err == nil && (strings.Contains(s, " ") || oneWord) {
					texts = append(texts, formatVerb.ReplaceAllString(s, " "))
				}
			}
			return true
		})
		for code := 100; code < 600; code++ {
			texts = append(texts, http.StatusText(code))
		}
		for _, text := range texts {
			for _, w := range strings.FieldsFunc(text, func(r rune) bool { return !unicode.IsLetter(r) }) {
				vocab.words[w] = true
			}
			for _, r := range text {
				if !unicode.IsLetter(r) && !unicode.IsDigit(r) && unicode.IsPrint(r) {
					vocab.other[r] = true
				}
			}
		}
	})
	if len(vocab.words) < 50 {
		tb.Fatalf("only %d words found in classify.go's literals", len(vocab.words))
	}
	return vocab
}
