package publicapi

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// legacyHosts are official hosts that still answer besides those of baseURLs.
var legacyHosts = map[jetonv1alpha1.API][]string{
	// Démarches Numériques was Démarches Simplifiées; its old host still serves the API.
	jetonv1alpha1.DemarchesNumeriques: {"www.demarches-simplifiees.fr"},
}

// OfficialHosts returns the hosts of an API's production and staging instances: the only
// places a token of that API goes to by default, over HTTPS.
func OfficialHosts(api jetonv1alpha1.API) []string {
	var hosts []string
	for _, u := range baseURLs[api] {
		hosts = append(hosts, HostOf(u))
	}
	hosts = append(hosts, legacyHosts[api]...)
	slices.Sort(hosts)
	return slices.Compact(hosts)
}

// HostOf returns the host[:port] of a URL, lower case; "" when it does not parse.
func HostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Host)
}

// HostPolicy says where jeton may send a token (a probe) or point a client workload (the
// injected BASE_URL): an API's official hosts over HTTPS, or a host the cluster admin
// listed with --allowed-api-hosts. Plain HTTP only to a listed loopback host (the emulator
// of the local run and the tests), so a token never crosses a network in clear text.
//
// Whoever may edit Habilitations and TechnicalTokens can set spec.baseURL; without this
// policy they could send any token of the credentials namespaces anywhere.
type HostPolicy struct {
	allowed map[string]bool
}

// NewHostPolicy validates the entries of --allowed-api-hosts: each a host or host:port,
// without scheme, path or user information, matched exactly (case-insensitively).
func NewHostPolicy(allowed []string) (HostPolicy, error) {
	p := HostPolicy{allowed: map[string]bool{}}
	for _, entry := range allowed {
		h := strings.ToLower(strings.TrimSpace(entry))
		if h == "" {
			continue
		}
		u, err := url.Parse("https://" + h)
		if err != nil || u.Host != h || u.Hostname() == "" || u.User != nil || u.Path != "" {
			return HostPolicy{}, fmt.Errorf("%q is not a host or host:port (no scheme, path or user)", entry)
		}
		if strings.HasSuffix(h, ":") {
			return HostPolicy{}, fmt.Errorf("%q has an empty port", entry)
		}
		p.allowed[h] = true
	}
	return p, nil
}

// Allowed lists the extra hosts, sorted.
func (p HostPolicy) Allowed() []string {
	hosts := make([]string, 0, len(p.allowed))
	for h := range p.allowed {
		hosts = append(hosts, h)
	}
	slices.Sort(hosts)
	return hosts
}

// HostNotAllowedError says why a base URL is refused. Its message names the host (a short
// string an editor wrote in spec.baseURL, never a token) and what to do.
type HostNotAllowedError struct {
	API    jetonv1alpha1.API
	Host   string
	Reason string
}

func (e *HostNotAllowedError) Error() string {
	return fmt.Sprintf("%s; tokens of %s go only to its official hosts over HTTPS (%s) or to hosts listed in the operator's --allowed-api-hosts flag (plain HTTP only for loopback hosts listed there). Remove spec.baseURL, or ask the cluster admin to add %q to --allowed-api-hosts",
		e.Reason, e.API, strings.Join(OfficialHosts(e.API), ", "), e.Host)
}

// maxShownHost bounds how much of an editor-written host a message repeats.
const maxShownHost = 253

// Check returns nil when a token of api may be sent to baseURL, else a *HostNotAllowedError.
func (p HostPolicy) Check(api jetonv1alpha1.API, baseURL string) error {
	refuse := func(host, format string, args ...any) error {
		if len(host) > maxShownHost {
			host = host[:maxShownHost]
		}
		return &HostNotAllowedError{API: api, Host: host, Reason: fmt.Sprintf(format, args...)}
	}
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return refuse("", "the base URL is not an absolute http(s) URL")
	}
	host := strings.ToLower(u.Host)
	switch {
	case u.User != nil:
		return refuse(host, "the base URL carries user information")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return refuse(host, "the base URL carries a query or a fragment")
	}
	switch u.Scheme {
	case "https":
		if p.allowed[host] {
			return nil
		}
		official := strings.TrimSuffix(host, ":443")
		if slices.Contains(OfficialHosts(api), official) {
			return nil
		}
		return refuse(host, "host %q is not an official host of %s", host, api)
	case "http":
		if !p.allowed[host] {
			return refuse(host, "plain HTTP to host %q, which is not listed in --allowed-api-hosts", host)
		}
		if !IsLoopback(u.Hostname()) {
			return refuse(host, "plain HTTP to host %q, which is not a loopback host: a token never crosses a network in clear text", host)
		}
		return nil
	default:
		return refuse(host, "scheme %q is neither https nor http", u.Scheme)
	}
}

// IsLoopback reports whether hostname is localhost or a loopback IP address.
func IsLoopback(hostname string) bool {
	if strings.EqualFold(hostname, "localhost") {
		return true
	}
	ip := net.ParseIP(hostname)
	return ip != nil && ip.IsLoopback()
}

// CanonicalHost returns one spelling for every spelling of the host a base URL talks to:
// lower case, without the trailing dot of a fully qualified name, without the scheme's
// default port (443 for https, 80 for http). It is the key of everything counted per
// address (the rate budget, the 429 backoff): Check accepts several spellings of one host
// (ENTREPRISE.api.gouv.fr, entreprise.api.gouv.fr:443, …), and they all reach one server
// from one address. Merging spellings errs towards one budget, never towards two. "" when
// the URL has no host.
func CanonicalHost(baseURL string) string {
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" {
		return ""
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	host = strings.TrimSuffix(host, ".")
	switch {
	case port == "",
		port == "443" && strings.EqualFold(u.Scheme, "https"),
		port == "80" && strings.EqualFold(u.Scheme, "http"):
		port = ""
	}
	if port == "" {
		if strings.Contains(host, ":") { // an IPv6 literal
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, port)
}
