package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/budget"
	"github.com/jeton-dev/jeton/internal/injection"
	"github.com/jeton-dev/jeton/internal/metrics"
	"github.com/jeton-dev/jeton/internal/probe"
	"github.com/jeton-dev/jeton/internal/publicapi"
	"github.com/jeton-dev/jeton/internal/tokensource"
)

// CRD defaults, applied again here for objects written before a default existed.
const (
	defaultProbeInterval = 5 * time.Minute
	defaultProbeTimeout  = 10 * time.Second
)

// +kubebuilder:rbac:groups=jeton.dev,resources=technicaltokens,verbs=get;list;watch
// +kubebuilder:rbac:groups=jeton.dev,resources=technicaltokens/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// TechnicalTokenReconciler keeps each TechnicalToken's status: what its token says about
// itself (fingerprint, id, expiry, scopes) and what the API's own check says, probe after
// probe. It never does HTTP itself: due probes go to the Executor, whose results come back
// as reconcile requests, so a slow API never holds a reconcile worker.
type TechnicalTokenReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Executor *probe.Executor
	Options  Options
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	bindings tokenBindings
	// writes tells a stale cache copy from a current one.
	writes *ownWrites
}

func setupTechnicalTokenReconciler(mgr ctrl.Manager, opts Options, writes *ownWrites) error {
	results := make(chan event.GenericEvent, 1024)
	exec := probe.NewExecutor(probe.ExecutorOptions{
		Allow: opts.APIHosts.Check,
		// One budget for everything jeton sends to the APIs; a new leader first takes back
		// the holds the previous one recorded in status.
		Budget: budget.New(budget.Options{PerHostPerMinute: opts.APIHostBudgetPerMinute}),
		Restore: func(ctx context.Context, b *budget.Budget) error {
			return restoreHolds(ctx, mgr.GetAPIReader(), b, time.Now())
		},
		OnRestoreError: func(err error) {
			mgr.GetLogger().Error(err, "restoring the rate-limit holds; no probe is sent until it succeeds")
		},
		Notify: func(ctx context.Context, key types.NamespacedName) {
			ev := event.GenericEvent{Object: &jetonv1alpha1.TechnicalToken{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}}
			select {
			case results <- ev:
			case <-ctx.Done():
			}
		},
	})
	if err := mgr.Add(exec); err != nil {
		return err
	}
	r := &TechnicalTokenReconciler{
		Client:   recordingClient{Client: mgr.GetClient(), writes: writes},
		writes:   writes,
		Recorder: mgr.GetEventRecorder("jeton"),
		Executor: exec,
		Options:  opts,
		bindings: tokenBindings{Reader: mgr.GetClient()},
	}
	return r.SetupWithManager(mgr, results)
}

// SetupWithManager registers the controller and its watches; results are the finished
// probes, each a request for its TechnicalToken.
func (r *TechnicalTokenReconciler) SetupWithManager(mgr ctrl.Manager, results <-chan event.GenericEvent) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("technicaltoken").
		// Status writes (ours) do not bump the generation: ignoring them avoids a second
		// pass per probe. An on-demand request (jeton.dev/requested-at) gets its pass.
		For(&jetonv1alpha1.TechnicalToken{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, requestedAtChanged{}))).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.mapSecret)).
		// A Habilitation taking or leaving a token refuses or frees the TechnicalTokens
		// naming the same token.
		Watches(&jetonv1alpha1.Habilitation{}, handler.EnqueueRequestsFromMapFunc(r.mapHabilitation)).
		WatchesRawSource(source.Channel(results, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Options.MaxConcurrentReconciles}).
		Complete(r)
}

func (r *TechnicalTokenReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Reconcile brings one TechnicalToken's status up to date and schedules its next probe.
func (r *TechnicalTokenReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	tt := &jetonv1alpha1.TechnicalToken{}
	if err := r.Get(ctx, req.NamespacedName, tt); err != nil {
		if apierrors.IsNotFound(err) {
			r.Executor.Forget(req.NamespacedName)
			metrics.ForgetTechnicalToken(req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !tt.DeletionTimestamp.IsZero() {
		r.Executor.Forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	if r.writes.behind(tt) {
		return ctrl.Result{RequeueAfter: cacheCatchUp}, nil
	}
	orig := tt.DeepCopy()
	return finish(ctx, r.Client, r.Recorder, tt, orig, r.pass(ctx, tt))
}

// announcedReasons are the Ready reasons told in an Event when Ready turns to them (the
// probe transitions have their own ProbeFailed / ProbeRecovered events).
var announcedReasons = map[string]bool{
	jetonv1alpha1.ReasonNamespaceNotAllowed:  true,
	jetonv1alpha1.ReasonSecretNotFound:       true,
	jetonv1alpha1.ReasonSecretKeyNotFound:    true,
	jetonv1alpha1.ReasonInvalidToken:         true,
	jetonv1alpha1.ReasonTokenExpired:         true,
	jetonv1alpha1.ReasonTokenExpiringSoon:    true,
	jetonv1alpha1.ReasonAPIHostNotAllowed:    true,
	jetonv1alpha1.ReasonBaseURLMissing:       true,
	jetonv1alpha1.ReasonTokenConflict:        true,
	jetonv1alpha1.ReasonSecretClientMismatch: true,
}

// pass gathers what tt depends on (its namespace, its token, where probes would carry it
// and who else holds it), decides, and returns the outcome. It sets tt's status but for
// the conditions, which finish derives from the outcome.
func (r *TechnicalTokenReconciler) pass(ctx context.Context, tt *jetonv1alpha1.TechnicalToken) outcome {
	if v := probe.NamespaceNotAllowed(tt, r.Options.CredentialsNamespaces); v != nil {
		return r.refuse(tt, probe.Refusal{Verdict: *v})
	}
	if v := injection.RefusedForLabel(tt.Status.Conditions); v != nil {
		return r.refuse(tt, probe.Refusal{Verdict: *v})
	}
	tok, v, err := readToken(ctx, r.Client, r.Options, tokensource.Reader{
		Namespace: tt.Namespace, Ref: tt.Spec.TokenSecretRef, API: tt.Spec.API,
		Client: "", // a technical token is nobody's: a Secret labelled for any client is refused
		Noun:   "technical token", Issued: fmt.Sprintf("the technical token issued for %s", tt.Spec.API),
	})
	if err != nil {
		return failed("reading the token Secret", err)
	}
	if v != nil {
		// No fingerprint in status: whoever may create TechnicalTokens could otherwise read
		// the hash of any value of the credentials namespaces (a password, say).
		return r.refuse(tt, probe.Refusal{Verdict: *v})
	}
	// The fingerprint status held before this pass: a new token is probed at once.
	seenFP := tt.Status.TokenFingerprint
	tt.Status.TokenStatus = tokensource.Status(tok, tt.Spec.API, tt.Spec.ExpiresAt)
	if exp := tt.Status.ExpiresAt; seenFP != "" && seenFP != tok.Fingerprint && exp != nil && !exp.After(r.now()) {
		// A new token already past its own expiry: the old token's success says nothing of
		// whether the API still accepts this one (probe.Judge's TokenProlonged reads it).
		tt.Status.LastSuccessTime = nil
	}
	dest, err := r.destination(ctx, tt, tok.Fingerprint)
	if err != nil {
		return failed("finding who else holds the token", err)
	}
	if refusal := probe.Refuse(tt, dest); refusal != nil {
		return r.refuse(tt, *refusal)
	}
	return r.probe(ctx, tt, tok, dest.BaseURL, seenFP)
}

// destination gathers where tt's probes would carry its token fp, and who else holds it.
func (r *TechnicalTokenReconciler) destination(ctx context.Context, tt *jetonv1alpha1.TechnicalToken, fp string) (probe.Destination, error) {
	d := probe.Destination{Fingerprint: fp, BaseURL: publicapi.BaseURL(tt.Spec.API, tt.Spec.Environment, tt.Spec.BaseURL)}
	if d.BaseURL != "" {
		d.HostRefused = r.Options.APIHosts.Check(tt.Spec.API, d.BaseURL)
	}
	self := injection.Binding{Kind: injection.KindTechnicalToken, Namespace: tt.Namespace, Name: tt.Name, Created: tt.CreationTimestamp.Time}
	var err error
	d.Binding, d.LabelledFor, err = r.bindings.arbitrate(ctx, self, fp)
	return d, err
}

// refuse is the outcome of a TechnicalToken that is not probed: its probe is cancelled at
// once (one in flight is aborted), and what its token says about itself is cleared unless
// the refusal keeps it.
func (r *TechnicalTokenReconciler) refuse(tt *jetonv1alpha1.TechnicalToken, refusal probe.Refusal) outcome {
	r.Executor.Cancel(client.ObjectKeyFromObject(tt))
	tt.Status.NextProbeTime = nil
	if !refusal.KeepToken {
		tt.Status.TokenStatus = jetonv1alpha1.TokenStatus{}
	}
	return outcome{Verdict: refusal.Verdict, announce: announcedReasons[refusal.Reason]}
}

// mapSecret finds the TechnicalTokens reading a Secret of a credentials namespace.
func (r *TechnicalTokenReconciler) mapSecret(ctx context.Context, obj client.Object) []reconcile.Request {
	if !r.Options.IsCredentialsNamespace(obj.GetNamespace()) {
		return nil
	}
	tts := &jetonv1alpha1.TechnicalTokenList{}
	if err := r.List(ctx, tts, client.InNamespace(obj.GetNamespace()), client.MatchingFields{IndexTokenSecret: obj.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "listing TechnicalTokens by token Secret")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(tts.Items))
	for i := range tts.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&tts.Items[i])})
	}
	return reqs
}

// mapHabilitation finds the TechnicalTokens holding the token a Habilitation holds or held.
func (r *TechnicalTokenReconciler) mapHabilitation(ctx context.Context, obj client.Object) []reconcile.Request {
	h, ok := obj.(*jetonv1alpha1.Habilitation)
	if !ok {
		return nil
	}
	var reqs []reconcile.Request
	for _, fp := range []string{h.Status.TokenFingerprint, r.bindings.sourceFingerprint(ctx, h.Namespace, h.Spec.TokenSecretRef)} {
		if fp == "" {
			continue
		}
		tts := &jetonv1alpha1.TechnicalTokenList{}
		if err := r.List(ctx, tts, client.MatchingFields{IndexTokenFingerprint: fp}); err != nil {
			log.FromContext(ctx).Error(err, "listing TechnicalTokens by token fingerprint")
			continue
		}
		for i := range tts.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&tts.Items[i])})
		}
	}
	return reqs
}
