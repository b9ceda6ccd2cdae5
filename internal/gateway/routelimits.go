package gateway

import (
	"net/http"
	"regexp"
	"time"

	"golang.org/x/time/rate"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/probe"
)

// Some API Entreprise routes have a per-token limit far below the API's 250/min
// (siade's commons/data/throttle.yml, applied by siade/config/initializers/rack_attack.rb per
// JWT): 5/min for a fiscal certificate, 15/min for the RNE documents, 50/min for the other
// documents. The gateway keeps each under its own bucket, as it keeps the API's limit, so
// that a client's batch of certificates gets the gateway's 429, never the API's; and a 429
// the API still sends there holds only that token on that route group, not the whole host.

// routeGroup is one of throttle.yml's limits: a group of routes sharing a bucket per token
// ("by_group_of_endpoints"), or one route with its own ("by_single_endpoint": one group per
// route here).
type routeGroup struct {
	name  string
	limit Limit
	paths []*regexp.Regexp
}

// v is the version segment: the same controllers serve /v3 and later versions.
const v = `^/v[0-9]+/`

func paths(exprs ...string) []*regexp.Regexp {
	out := make([]*regexp.Regexp, len(exprs))
	for i, e := range exprs {
		out[i] = regexp.MustCompile(e)
	}
	return out
}

// entrepriseRouteGroups: throttle.yml's groups below 250/min, with the routes of
// siade/config/routes/api_entreprise.rb whose controllers they name.
var entrepriseRouteGroups = []routeGroup{
	// high_latency_documents, by_single_endpoint, 5 per 60 s.
	{"dgfip_attestations_fiscales", Limit{5, time.Minute}, paths(v + `dgfip/unites_legales/[^/]+/attestation_fiscale$`)},
	{"cibtp_attestation_cotisations", Limit{5, time.Minute}, paths(v + `cibtp/etablissements/[^/]+/attestation_cotisations_conges_payes_chomage_intemperies$`)},
	// inpi_rne, by_single_endpoint, 15 per 60 s.
	{"inpi_rne_extrait_rne", Limit{15, time.Minute}, paths(v + `inpi/rne/unites_legales/[^/]+/extrait_rne$`)},
	{"inpi_rne_beneficiaires_effectifs", Limit{15, time.Minute}, paths(v + `inpi/rne/unites_legales/[^/]+/beneficiaires_effectifs$`)},
	{"inpi_rne_beneficiaires_effectifs_open_data", Limit{15, time.Minute}, paths(v + `inpi/rne/unites_legales/open_data/[^/]+/beneficiaires_effectifs$`)},
	{"inpi_rne_actes_bilans", Limit{15, time.Minute}, paths(v+`inpi/rne/unites_legales/[^/]+/actes_bilans$`, v+`inpi/rne/unites_legales/open_data/[^/]+/actes_bilans$`)},
	// low_latency_documents, by_group_of_endpoints, 50 per 60 s.
	{"low_latency_documents", Limit{50, time.Minute}, paths(
		v+`probtp/etablissements/[^/]+/attestation_cotisations_retraite$`,
		v+`fntp/unites_legales/[^/]+/carte_professionnelle_travaux_publics$`,
		v+`cnetp/unites_legales/[^/]+/attestation_cotisations_conges_payes_chomage_intemperies$`,
		v+`qualibat/etablissements/[^/]+/certification_batiment$`,
		v+`ministere_interieur/rna/associations/[^/]+/documents$`,
		`^/proxy/inpi/download/[^/]+$`)},
	// proxied_files, by_single_endpoint, 50 per 60 s.
	{"proxied_files", Limit{50, time.Minute}, paths(`^/proxy/files/[^/]+$`)},
	// gip_mds, by_group_of_endpoints, 50 per 60 s.
	{"gip_mds", Limit{50, time.Minute}, paths(
		v+`gip_mds/unites_legales/[^/]+/effectifs_annuels/[^/]+$`,
		v+`gip_mds/etablissements/[^/]+/effectifs_mensuels/[^/]+/annee/[^/]+$`)},
	// urssaf_attestation_sociales, by_single_endpoint, 100 per 60 s.
	{"urssaf_attestation_vigilance", Limit{100, time.Minute}, paths(v + `urssaf/unites_legales/[^/]+/attestation_vigilance$`)},
}

// RouteGroup is the per-token route limit a request falls under; the zero value: none
// (the API's general limit only).
type RouteGroup struct {
	Name  string
	Limit Limit
}

// RouteGroupOf returns the per-token route limit a request of api to path falls under.
func RouteGroupOf(api jetonv1alpha1.API, path string) RouteGroup {
	if api != jetonv1alpha1.APIEntreprise {
		return RouteGroup{}
	}
	for _, g := range entrepriseRouteGroups {
		for _, re := range g.paths {
			if re.MatchString(path) {
				return RouteGroup{Name: g.name, Limit: g.limit}
			}
		}
	}
	return RouteGroup{}
}

// routeLimits is a token's bucket and hold for one route group.
type routeLimits struct {
	limiter   *rate.Limiter
	limit     Limit
	notBefore time.Time
	lastAsk   time.Time
	replicas  int
}

// AdmitRoute is Admit for a request in route group g (RouteGroupOf, computed once per
// request): a route with its own per-token limit also takes a slot of that token's bucket
// for the group, and waits out a hold the API asked for there.
func (l *Limits) AdmitRoute(api jetonv1alpha1.API, host, fp string, g RouteGroup, now time.Time) (ok bool, wait time.Duration, reason string) {
	if g.Name == "" {
		return l.Admit(api, host, fp, now)
	}
	limit := g.Limit
	key := fp + "|" + g.Name
	l.mu.Lock()
	r := l.routes[key]
	if r == nil || r.replicas != l.replicas {
		rt, b := splitLimit(limit, l.replicas)
		if r == nil {
			r = &routeLimits{limiter: rate.NewLimiter(rt, b), limit: limit}
			l.routes[key] = r
		} else {
			r.limiter.SetLimitAt(now, rt)
			r.limiter.SetBurstAt(now, b)
		}
		r.replicas = l.replicas
	}
	r.lastAsk = now
	l.pruneRoutesLocked(now)
	if r.notBefore.After(now) {
		l.mu.Unlock()
		return false, r.notBefore.Sub(now), ReasonUpstreamHeld
	}
	res := r.limiter.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		l.mu.Unlock()
		return false, d, ReasonThrottled
	}
	l.mu.Unlock()
	if ok, wait, reason = l.Admit(api, host, fp, now); !ok {
		l.mu.Lock()
		res.CancelAt(now)
		l.mu.Unlock()
	}
	return ok, wait, reason
}

// ObserveRoute is Observe for an answer to a request in route group g. A 429 (or a wait asked) on a
// route with its own per-token limit holds that token on that route group only: the API's
// general and per-address limits were not what it counted, so neither the token's other
// routes nor the host are held.
func (l *Limits) ObserveRoute(host, fp string, g RouteGroup, status int, h http.Header, now time.Time) {
	if g.Name == "" {
		l.Observe(host, fp, status, h, now)
		return
	}
	until := probe.RetryAt(h, now)
	if status == http.StatusTooManyRequests && until.Before(now.Add(time.Minute)) {
		// Its window is a minute (throttle.yml); no Retry-After: wait it out.
		until = now.Add(time.Minute)
	}
	if until.IsZero() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.routes[fp+"|"+g.Name]; r != nil && until.After(r.notBefore) {
		r.notBefore = until
	}
}

// pruneRoutesLocked drops route state idle for a minute and not held, when there is more
// than a little of it.
func (l *Limits) pruneRoutesLocked(now time.Time) {
	if len(l.routes) < 64 || now.Sub(l.routesPruned) < time.Minute {
		return
	}
	l.routesPruned = now
	for k, r := range l.routes {
		if now.Sub(r.lastAsk) > time.Minute && !r.notBefore.After(now) {
			delete(l.routes, k)
		}
	}
}
