// Command emulator serves jeton's emulator of API Entreprise, API Particulier and
// Démarches Numériques (package internal/emulator) for local runs and demos.
//
//	go run ./cmd/emulator [--listen 127.0.0.1:18080] [--signing-key-file FILE] [--limit APIEntreprise=60/1m,240/1m]
//	go run ./cmd/emulator mint [--server URL] [--scopes a,b] [--expires-in 2160h | --expires-at RFC3339] [--subject S] API
//
// mint asks a running emulator for a token and prints it on stdout (its id on stderr),
// e.g. to store it in a Secret:
//
//	kubectl create secret generic tt-entreprise --from-literal=token="$(go run ./cmd/emulator mint APIEntreprise)"
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
)

const defaultAddr = "127.0.0.1:18080"

const usage = `Usage:
  emulator [--listen ADDR] [--signing-key-file FILE] [--legacy-shapes] [--limit API=N/PERIOD[,M/PERIOD]]...
                                                          serve the emulator
  emulator mint [flags] API                               print a token minted by a running emulator

APIs: APIEntreprise, APIParticulier, DemarchesNumeriques (scopes: allowed démarche numbers).

Endpoints:
  GET  /privileges, GET /pings                 API Entreprise
  GET  /api/introspect                         API Particulier (X-Api-Key or Authorization: Bearer)
  POST /api/v2/graphql                         Démarches Numériques (queries and mutations)

Data routes (same tokens, limits and behaviours; parameters checked as the backends do):
  GET  /v3/insee/sirene/etablissements/SIRET?context=&object=&recipient=SIRET   API Entreprise
  GET  /v3/insee/sirene/unites_legales/SIREN?context=&object=&recipient=SIRET   API Entreprise
  GET  /v3/france_travail/statut/identifiant?identifiant=&recipient=SIRET       API Particulier v3
  GET  /api/v2/situations-pole-emploi?identifiant=[&recipient=SIRET]            API Particulier v2

Admin API (unauthenticated: keep the emulator on localhost):
  POST /_emulator/tokens       {"api":"APIEntreprise","scopes":["..."],"expiresAt":"2027-01-01T00:00:00Z"}
  PUT  /_emulator/tokens/ID    {"behaviour":"revoked","retryAfterSeconds":60,"delayMs":2000,"largeAnswerBytes":52428800}
  POST /_emulator/tokens/ID/renew {"expiresAt":"2028-01-01T00:00:00Z"}   new string, same jti
  GET  /_emulator/tokens       ids, APIs, behaviours, request counts (never the tokens)
  GET  /_emulator/tokens/ID/requests
  PUT  /_emulator/down         {"down":true}
  PUT  /_emulator/banned       {"banned":true}   no answer at all, as from a banned IP
  (tokens take "allowedNetworks":["203.0.113.0/24"] on mint and PUT: an IP allow-list)

Behaviours: %s
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "emulator:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "mint" {
		return mint(ctx, args[1:], stdout, stderr)
	}
	fs := newFlagSet("emulator", stderr)
	listen := fs.String("listen", defaultAddr, "address to serve on")
	keyFile := fs.String("signing-key-file", "", "file whose bytes are the HS256 signing key, so tokens survive restarts (default: a random key)")
	legacy := fs.Bool("legacy-shapes", false, "answer in the shapes of the APIs' older documentation instead of their backends' current code (docs/api-fidelity.md)")
	var limits []emulator.Option
	fs.Func("limit", "API=N/PERIOD[,M/PERIOD]: per-token and per-address limits of an API instead of the real ones, e.g. APIEntreprise=60/1m,240/1m (repeatable)", func(v string) error {
		api, l, err := emulator.ParseLimits(v)
		if err == nil {
			limits = append(limits, emulator.WithLimits(api, l))
		}
		return err
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; see --help", fs.Arg(0))
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	opts := append([]emulator.Option{emulator.WithLogger(log)}, limits...)
	if *legacy {
		opts = append(opts, emulator.WithLegacyShapes())
	}
	if *keyFile != "" {
		key, err := os.ReadFile(*keyFile)
		if err != nil {
			return fmt.Errorf("reading signing key: %w", err)
		}
		if len(key) < 32 {
			return fmt.Errorf("signing key file %s holds %d bytes; use at least 32 (e.g. head -c32 /dev/urandom > %s)", *keyFile, len(key), *keyFile)
		}
		opts = append(opts, emulator.WithSigningKey(key))
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: emulator.New(opts...), ReadHeaderTimeout: 10 * time.Second}
	log.Info("emulator listening", "address", "http://"+ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Slow answers may wait for long: give them a moment, then cut them off.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return srv.Close()
	}
	return nil
}

func mint(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("emulator mint", stderr)
	server := fs.String("server", "http://"+defaultAddr, "URL of the running emulator")
	scopes := fs.String("scopes", "", "comma-separated scopes (Démarches Numériques: démarche numbers; empty: all)")
	expiresIn := fs.Duration("expires-in", 0, "lifetime of the token (default 18 months)")
	expiresAt := fs.String("expires-at", "", "expiry as RFC 3339, instead of --expires-in")
	subject := fs.String("subject", "", "JWT sub claim (habilitation title)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("mint takes one API (%s, %s or %s)", jetonv1alpha1.APIEntreprise, jetonv1alpha1.APIParticulier, jetonv1alpha1.DemarchesNumeriques)
	}
	req := emulator.MintRequest{API: jetonv1alpha1.API(fs.Arg(0)), Subject: *subject}
	if *scopes != "" {
		req.Scopes = strings.Split(*scopes, ",")
	}
	switch {
	case *expiresAt != "" && *expiresIn != 0:
		return errors.New("use --expires-at or --expires-in, not both")
	case *expiresAt != "":
		t, err := time.Parse(time.RFC3339, *expiresAt)
		if err != nil {
			return fmt.Errorf("--expires-at: %w", err)
		}
		req.ExpiresAt = t
	case *expiresIn != 0:
		req.ExpiresAt = time.Now().Add(*expiresIn)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(*server, "/")+"/_emulator/tokens", bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return fmt.Errorf("is the emulator running (go run ./cmd/emulator)? %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		var e struct{ Error string }
		_ = json.Unmarshal(answer, &e)
		return fmt.Errorf("emulator answered %s: %s", resp.Status, e.Error)
	}
	var out emulator.MintResponse
	if err := json.Unmarshal(answer, &out); err != nil {
		return fmt.Errorf("decoding the emulator's answer: %w", err)
	}
	fmt.Fprintf(stderr, "id %s, expires %s\n", out.ID, out.ExpiresAt.Format(time.RFC3339))
	_, err = fmt.Fprintln(stdout, out.Token)
	return err
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, usage, emulator.Behaviours)
		fmt.Fprintf(stderr, "\nFlags of %s:\n", name)
		fs.PrintDefaults()
	}
	return fs
}
