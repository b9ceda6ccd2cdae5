package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// TestWriteRefusalJSONAPI: API Entreprise and API Particulier refusals in apistration's
// JSON:API errors format (siade/app/serializers/errors_serializer.rb), as their client
// libraries read errors[0].code/title/detail.
func TestWriteRefusalJSONAPI(t *testing.T) {
	for _, api := range []jetonv1alpha1.API{ae, ap} {
		t.Run(string(api), func(t *testing.T) {
			rec := httptest.NewRecorder()
			ref := refuseParam(http.StatusForbidden, ReasonRecipientMismatch, "recipient", "recipient must be the client's SIRET")
			WriteRefusal(rec, api, ref, 0)
			if rec.Code != http.StatusForbidden {
				t.Fatalf("status %d", rec.Code)
			}
			var body struct {
				Errors []struct {
					Code, Title, Detail string
					Source              map[string]string
					Meta                map[string]any
				}
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("%s: %v", rec.Body, err)
			}
			if len(body.Errors) != 1 {
				t.Fatalf("body %s", rec.Body)
			}
			e := body.Errors[0]
			if e.Code != "JETON_RECIPIENT_MISMATCH" || e.Title != refusalTitle || e.Detail != ref.Message ||
				e.Source["parameter"] != "recipient" || e.Meta == nil || len(e.Meta) != 0 {
				t.Fatalf("error %+v in %s", e, rec.Body)
			}
			wantCommonHeaders(t, rec)
			if rec.Header().Get("Retry-After") != "" {
				t.Fatal("Retry-After without a delay")
			}
		})
	}
	t.Run("no parameter: no source", func(t *testing.T) {
		rec := httptest.NewRecorder()
		WriteRefusal(rec, ae, NewRefusal(http.StatusBadRequest, ReasonBadQuery, "x"), 0)
		if strings.Contains(rec.Body.String(), `"source"`) {
			t.Fatalf("body %s", rec.Body)
		}
	})
}

// TestWriteRefusalGraphQL: Démarches Numériques refusals in its GraphQL error format
// (app/controllers/api/v2/base_controller.rb, graphql_error).
func TestWriteRefusalGraphQL(t *testing.T) {
	rec := httptest.NewRecorder()
	ref := mutationRefusal()
	WriteRefusal(rec, dn, ref, 0)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("status %d", rec.Code)
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if string(body["data"]) != "null" {
		t.Fatalf("data %s", body["data"])
	}
	var errs []struct {
		Message    string
		Extensions map[string]string
	}
	if err := json.Unmarshal(body["errors"], &errs); err != nil || len(errs) != 1 {
		t.Fatalf("errors %s: %v", body["errors"], err)
	}
	if errs[0].Message != ref.Message || errs[0].Extensions["code"] != "JETON_MUTATION_NOT_ALLOWED" {
		t.Fatalf("error %+v", errs[0])
	}
	wantCommonHeaders(t, rec)
}

func wantCommonHeaders(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Header().Get("Content-Type") != "application/json; charset=utf-8" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("headers %v", rec.Header())
	}
}

func TestWriteRefusalRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{0, ""}, {-time.Second, ""}, {time.Millisecond, "1"}, {time.Second, "1"},
		{1200 * time.Millisecond, "2"}, {32 * time.Second, "32"}, {90*time.Second + 1, "91"},
	} {
		rec := httptest.NewRecorder()
		WriteRefusal(rec, ae, NewRefusal(http.StatusTooManyRequests, ReasonThrottled, "slow down"), tt.d)
		if got := rec.Header().Get("Retry-After"); got != tt.want {
			t.Errorf("Retry-After for %v = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestWriteRefusalAllow(t *testing.T) {
	for api, want := range map[jetonv1alpha1.API]string{ae: "GET", ap: "GET", dn: "POST"} {
		rec := httptest.NewRecorder()
		WriteRefusal(rec, api, NewRefusal(http.StatusMethodNotAllowed, ReasonMethodNotAllowed, "x"), 0)
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != want {
			t.Errorf("%s: %d, Allow %q", api, rec.Code, rec.Header().Get("Allow"))
		}
	}
}

func TestNewRefusalBoundsMessage(t *testing.T) {
	ref := NewRefusal(http.StatusServiceUnavailable, ReasonNotReady, "line\r\nbreak \x00 "+strings.Repeat("é", 500)+"\xff")
	if len(ref.Message) > maxMessageLen || !utf8.ValidString(ref.Message) || strings.ContainsAny(ref.Message, "\r\n\x00") {
		t.Fatalf("message %q (%d bytes)", ref.Message, len(ref.Message))
	}
	if ref.Code != "JETON_NOT_READY" || ref.Error() == "" {
		t.Fatalf("refusal %+v", ref)
	}
	if len(Reasons) != 16 {
		t.Fatalf("%d reasons, the brief lists 16", len(Reasons))
	}
}
