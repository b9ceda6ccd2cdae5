package budget

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	host  = "entreprise.api.gouv.fr"
	other = "particulier.api.gouv.fr"
	fpA   = "aaaaaaaaaaaaaaaa"
	fpB   = "bbbbbbbbbbbbbbbb"
)

// Each row: answers observed in order, then what the budget holds for a request of token
// and host at a time.
func TestHolds(t *testing.T) {
	tooMany := func(at time.Duration) Answer {
		return Answer{Status: http.StatusTooManyRequests, At: t0.Add(at)}
	}
	type ask struct {
		host, fp string
		at       time.Duration
		want     time.Duration // wait from t0; 0: none
	}
	tests := []struct {
		name    string
		answers []struct {
			fp string
			a  Answer
		}
		asks []ask
	}{
		{
			name: "a 429 holds every token of the host for the backoff, other hosts not at all",
			answers: []struct {
				fp string
				a  Answer
			}{{fpA, tooMany(0)}},
			asks: []ask{{host, fpA, 0, 5 * time.Second}, {host, fpB, 0, 5 * time.Second}, {other, fpB, 0, 0}},
		},
		{
			name: "a 429's Retry-After longer than the backoff holds the host until it",
			answers: []struct {
				fp string
				a  Answer
			}{{fpA, Answer{Status: 429, At: t0, RetryAt: t0.Add(time.Minute)}}},
			asks: []ask{{host, fpB, 0, time.Minute}, {host, fpA, 30 * time.Second, time.Minute}},
		},
		{
			name: "429s in a row double the backoff up to the cap",
			answers: []struct {
				fp string
				a  Answer
			}{{fpA, tooMany(0)}, {fpA, tooMany(0)}, {fpA, tooMany(0)}, {fpA, tooMany(0)}, {fpA, tooMany(0)}, {fpA, tooMany(0)}, {fpA, tooMany(0)}, {fpA, tooMany(0)}, {fpA, tooMany(0)}, {fpA, tooMany(0)}},
			asks: []ask{{host, fpB, 0, 15 * time.Minute}},
		},
		{
			name: "an answer that is not a 429 restarts the backoff",
			answers: []struct {
				fp string
				a  Answer
			}{{fpA, tooMany(0)}, {fpA, tooMany(0)}, {fpA, Answer{Status: 200, At: t0.Add(time.Hour)}}, {fpA, tooMany(time.Hour)}},
			asks: []ask{{host, fpB, time.Hour, time.Hour + 5*time.Second}},
		},
		{
			name: "RateLimit-Remaining: 0 on a 200 holds only that token",
			answers: []struct {
				fp string
				a  Answer
			}{{fpA, Answer{Status: 200, At: t0, RetryAt: t0.Add(30 * time.Second)}}},
			asks: []ask{{host, fpA, 0, 30 * time.Second}, {other, fpA, 0, 30 * time.Second}, {host, fpB, 0, 0}},
		},
		{
			name: "a network error holds nothing",
			answers: []struct {
				fp string
				a  Answer
			}{{fpA, Answer{At: t0}}},
			asks: []ask{{host, fpA, 0, 0}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := New(Options{})
			for _, a := range tc.answers {
				b.Observe(host, a.fp, a.a)
			}
			for _, q := range tc.asks {
				now := t0.Add(q.at)
				var want time.Time
				if q.want > 0 {
					want = t0.Add(q.want)
				}
				if got := b.NotBefore(q.host, q.fp, now); !got.Equal(want) {
					t.Errorf("NotBefore(%s, %s) at +%v = %v, want %v", q.host, q.fp, q.at, got, want)
				}
				wait, release := b.Admit(q.host, q.fp, now)
				if q.want > 0 && (wait != want.Sub(now) || release != nil) {
					t.Errorf("Admit(%s, %s) at +%v waits %v, want %v", q.host, q.fp, q.at, wait, want.Sub(now))
				}
				if q.want == 0 && wait != 0 {
					t.Errorf("Admit(%s, %s) at +%v waits %v, want none", q.host, q.fp, q.at, wait)
				}
				if release != nil {
					release()
				}
			}
		})
	}
}

// Observe returns the holds to record (what survives a restart), and Restore gives them
// back to a fresh budget: the same requests are held.
func TestRestore(t *testing.T) {
	b := New(Options{})
	h := b.Observe(host, fpA, Answer{Status: 429, At: t0, RetryAt: t0.Add(2 * time.Minute)})
	if !h.Token.Equal(t0.Add(2*time.Minute)) || !h.Host.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("holds %+v, want token and host until +2m", h)
	}
	if h := b.Observe(host, fpB, Answer{Status: 200, At: t0}); !h.Token.IsZero() || !h.Host.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("a 200 for another token: holds %+v, want the host's only", h)
	}
	fresh := New(Options{})
	fresh.Restore(host, fpA, h)
	fresh.Restore(host, fpB, Hold{Token: t0.Add(time.Second)}) // never shortens
	for _, fp := range []string{fpA, fpB} {
		if wait, _ := fresh.Admit(host, fp, t0.Add(time.Minute)); wait != time.Minute {
			t.Errorf("restored budget: %s waits %v at +1m, want 1m", fp, wait)
		}
	}
	if wait, _ := fresh.Admit(other, fpB, t0.Add(time.Minute)); wait != 0 {
		t.Errorf("another host held %v by a restored hold", wait)
	}
	fresh.Restore("", "", Hold{Token: t0.Add(time.Hour), Host: t0.Add(time.Hour)}) // no key: nothing
	if _, ok := fresh.tokens[""]; ok {
		t.Error("Restore without a token made an entry")
	}
	if _, ok := fresh.hosts[""]; ok {
		t.Error("Restore without a host made an entry")
	}
}

// One request in flight per token, whatever host it goes to, until it is released.
func TestOneInFlightPerToken(t *testing.T) {
	b := New(Options{})
	wait, release := b.Admit(host, fpA, t0)
	if wait != 0 || release == nil {
		t.Fatalf("first request held %v", wait)
	}
	for _, h := range []string{host, other} {
		if w, r := b.Admit(h, fpA, t0); w != InFlightRetry || r != nil {
			t.Errorf("second request of the token to %s: wait %v, want %v", h, w, InFlightRetry)
		}
	}
	if w, r := b.Admit(host, fpB, t0); w != 0 || r == nil {
		t.Errorf("another token held %v", w)
	} else {
		r()
	}
	release()
	release() // idempotent
	if w, r := b.Admit(host, fpA, t0); w != 0 || r == nil {
		t.Errorf("after release the token is held %v", w)
	}
}

// The per-host budget spaces requests beyond the burst, for all tokens together.
func TestHostRate(t *testing.T) {
	b := New(Options{PerHostPerMinute: 600, HostBurst: 2}) // 10/s
	for i, fp := range []string{"t1", "t2"} {
		w, r := b.Admit(host, fp, t0)
		if w != 0 {
			t.Fatalf("request %d within the burst held %v", i, w)
		}
		r()
	}
	w, _ := b.Admit(host, "t3", t0)
	if w <= 0 || w > 100*time.Millisecond {
		t.Fatalf("third request held %v, want (0, 100ms]", w)
	}
	if w, r := b.Admit(other, "t4", t0); w != 0 {
		t.Errorf("another host's budget was spent: held %v", w)
	} else {
		r()
	}
	if w2, _ := b.Admit(host, "t3", t0.Add(w)); w2 != 0 {
		t.Fatalf("after the wait the request is still held %v", w2)
	}
	if got := New(Options{}).PerHostPerMinute(); got != DefaultPerHostPerMinute {
		t.Errorf("default budget %d/min, want %d", got, DefaultPerHostPerMinute)
	}
}

// The per-token budget spaces the requests of one token beyond a burst of 2, whoever asks.
func TestTokenRate(t *testing.T) {
	b := New(Options{PerTokenPerMinute: 60}) // 1/s
	for i := range 2 {
		w, r := b.Admit(host, fpA, t0)
		if w != 0 {
			t.Fatalf("request %d within the burst held %v", i, w)
		}
		r()
	}
	w, _ := b.Admit(other, fpA, t0)
	if w <= 0 || w > time.Second {
		t.Fatalf("third request of the token held %v, want (0, 1s]", w)
	}
	if w, r := b.Admit(host, fpB, t0); w != 0 {
		t.Errorf("another token held %v", w)
	} else {
		r()
	}
	if w2, r := b.Admit(host, fpA, t0.Add(w)); w2 != 0 {
		t.Fatalf("after the wait the request is still held %v", w2)
	} else {
		r()
	}
	// 100 asks in a minute, one every 600ms: at most 60 + the burst admitted.
	c := New(Options{})
	admitted := 0
	for i := range 100 {
		if w, r := c.Admit(host, fpA, t0.Add(time.Duration(i)*600*time.Millisecond)); w == 0 {
			admitted++
			r()
		}
	}
	if admitted > DefaultPerTokenPerMinute+2 {
		t.Errorf("%d requests of one token admitted in a minute, want ≤ %d", admitted, DefaultPerTokenPerMinute+2)
	}
}

// Tokens neither held nor in flight are pruned, so memory follows the live tokens.
func TestPrune(t *testing.T) {
	b := New(Options{PerHostPerMinute: 1 << 30, HostBurst: 1 << 20})
	held := "held"
	later := t0.Add(time.Minute) // the one-off tokens' rate slots are back
	b.Observe(host, held, Answer{Status: 200, At: t0, RetryAt: t0.Add(time.Hour)})
	for i := range 1000 {
		_, r := b.Admit(host, string(rune(0x1000+i)), later.Add(time.Duration(i)*time.Second))
		r()
	}
	if n := len(b.tokens); n > 260 {
		t.Errorf("%d token entries kept after 1000 one-off tokens", n)
	}
	if nb := b.NotBefore(host, held, later); !nb.Equal(t0.Add(time.Hour)) {
		t.Error("pruning dropped a held token")
	}
}

// TestObserveWithoutWaitKeepsNoToken: the gateway observes every answer of every token;
// an answer that asks no wait must not grow memory.
func TestObserveWithoutWaitKeepsNoToken(t *testing.T) {
	b := New(Options{})
	now := time.Unix(1_800_000_000, 0)
	for i := range 1000 {
		if h := b.Observe("entreprise.api.gouv.fr", fmt.Sprint("fp", i), Answer{Status: 200, At: now}); h != (Hold{}) {
			t.Fatalf("a 200 without wait holds %+v", h)
		}
	}
	if len(b.tokens) != 0 {
		t.Errorf("%d token entries after answers that asked no wait, want 0", len(b.tokens))
	}
	h := b.Observe("entreprise.api.gouv.fr", "held", Answer{Status: 200, RetryAt: now.Add(time.Minute), At: now})
	if !h.Token.Equal(now.Add(time.Minute)) || len(b.tokens) != 1 {
		t.Errorf("a wait asked: hold %+v, %d entries", h, len(b.tokens))
	}
	// A later answer without a wait still reports the hold in force.
	if h := b.Observe("entreprise.api.gouv.fr", "held", Answer{Status: 200, At: now.Add(time.Second)}); !h.Token.Equal(now.Add(time.Minute)) {
		t.Errorf("hold reported after a plain answer: %+v", h)
	}
}
