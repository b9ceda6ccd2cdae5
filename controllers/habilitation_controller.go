package controllers

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/conditions"
	"github.com/jeton-dev/jeton/internal/expiry"
	"github.com/jeton-dev/jeton/internal/injection"
	"github.com/jeton-dev/jeton/internal/metrics"
	"github.com/jeton-dev/jeton/internal/publicapi"
	"github.com/jeton-dev/jeton/internal/token"
)

const (
	// defaultTokenKey is the CRD default of spec.tokenSecretRef.key.
	defaultTokenKey = "token"
	// maxRequeue caps the wait until the next expiry threshold: a clock jump or a missed
	// event is corrected within a day at most.
	maxRequeue = 24 * time.Hour
	// clientSetupGrace is how long after its creation a Habilitation may wait silently at all
	// for a client the PublicClient reconciler has not reported on yet. A bulk import of
	// 10,000 clients keeps that reconciler busy for minutes (at the default 50 QPS, its
	// status writes alone take over 3): with 2 minutes, most Habilitations of the import
	// wrote ClientNotReady and a Warning event before Injected (1.96 status writes and 2.78
	// events per client, measured). A client that reports a problem is reported at once.
	clientSetupGrace = 15 * time.Minute
)

// labelRefusalKept is the message of a resource refused for a label, on every pass after.
const labelRefusalKept = "its token Secret was labelled (jeton.dev/client) for another client, so it was refused, and the refusal stands whatever the label says now: a resource placed early on a Secret must not take a client's token when the label goes. Delete and re-create it once it references its own token."

// Events recorded on Habilitations besides the Ready reasons.
const (
	eventRotated   = "Rotated"
	eventRestarted = "Restarted"
	eventRemoved   = "Removed"
	eventRestored  = "Restored"
)

// +kubebuilder:rbac:groups=jeton.dev,resources=habilitations,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=jeton.dev,resources=habilitations/status,verbs=get;patch
// +kubebuilder:rbac:groups=jeton.dev,resources=habilitations/finalizers,verbs=update
// +kubebuilder:rbac:groups=jeton.dev,resources=publicclients,verbs=get;list;watch
// +kubebuilder:rbac:groups=jeton.dev,resources=technicaltokens,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;list;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// HabilitationReconciler injects each Habilitation's token into its client's namespace, keeps
// it there (drift, rotation with workload restarts), and removes it whenever the binding is
// no longer sound (fail closed): unknown client, missing or invalid token, a token shared with
// another client or with a TechnicalToken, deletion.
type HabilitationReconciler struct {
	client.Client
	// APIReader reads what the cache does not hold: Secrets jeton does not manage (to detect
	// a name clash in the client namespace).
	APIReader client.Reader
	Recorder  events.EventRecorder
	Options   Options
	// Now is the clock, for expiry; time.Now when nil.
	Now func() time.Time

	bindings tokenBindings
	// ownerKey signs the Secrets jeton injects (injection.SecretProof).
	ownerKey *ownerKey
	// writes tells a stale cache copy from a current one.
	writes *ownWrites
	// restarts restarts the workloads using a rotated token.
	restarts *workloadRestarts
}

func setupHabilitationReconciler(mgr ctrl.Manager, opts Options, key *ownerKey, writes *ownWrites) error {
	r := &HabilitationReconciler{
		Client:    recordingClient{Client: mgr.GetClient(), writes: writes},
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("jeton"),
		Options:   opts,
		bindings:  tokenBindings{Reader: mgr.GetClient()},
		ownerKey:  key,
		writes:    writes,
	}
	r.restarts = newWorkloadRestarts(mgr.GetClient(), mgr.GetAPIReader(), r.rotationComing)
	if err := r.restarts.setupWithManager(mgr, opts); err != nil {
		return err
	}
	return r.SetupWithManager(mgr)
}

// SetupWithManager registers the controller and its watches.
func (r *HabilitationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("habilitation").
		// Every update passes, an on-demand request (jeton.dev/requested-at) too: a
		// predicate added here must let requestedAtChanged through.
		For(&jetonv1alpha1.Habilitation{}).
		// A Habilitation that changes or leaves its token frees or takes it: re-evaluate every
		// other Habilitation holding the same token (the refused ones wait on this).
		Watches(&jetonv1alpha1.Habilitation{}, handler.EnqueueRequestsFromMapFunc(r.mapTokenHolder)).
		Watches(&jetonv1alpha1.TechnicalToken{}, handler.EnqueueRequestsFromMapFunc(r.mapTokenHolder)).
		Watches(&jetonv1alpha1.PublicClient{}, handler.EnqueueRequestsFromMapFunc(r.mapClient)).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.mapNamespace)).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.mapSecret)).
		WatchesRawSource(r.restarts.habilitationWakeups()).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Options.MaxConcurrentReconciles}).
		Complete(r)
}

func (r *HabilitationReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// result is what one pass decided: the Ready condition and when to look again.
type result struct {
	// mark is conditions.MarkReady, MarkNotReady or MarkStalled.
	mark         func(*[]metav1.Condition, int64, string, string)
	reason       string
	message      string
	warning      bool
	requeueAfter time.Duration
	// waiting is a pass that only waits, for the client to be set up (a fresh Habilitation
	// has no status to correct yet) or for the restarts of a rotation (status keeps the
	// previous fingerprint until they are done): it writes no status and records no event.
	waiting bool
	// after are events of this pass (rotation, restarts) recorded once its status is
	// written, so that a pass reading a stale copy, whose status write conflicts, tells
	// nothing twice.
	after []func()
	// onTransition, when set, runs once when the Ready reason changes to reason (an event
	// on another object).
	onTransition func()
}

func notReady(reason, format string, args ...any) result {
	return result{mark: conditions.MarkNotReady, reason: reason, message: fmt.Sprintf(format, args...), warning: true}
}

// stalled is for states only a human can fix (kstatus: Failed).
func stalled(reason, format string, args ...any) result {
	return result{mark: conditions.MarkStalled, reason: reason, message: fmt.Sprintf(format, args...), warning: true}
}

// Reconcile brings one Habilitation's injected Secret to the desired state.
func (r *HabilitationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	h := &jetonv1alpha1.Habilitation{}
	if err := r.Get(ctx, req.NamespacedName, h); err != nil {
		if apierrors.IsNotFound(err) {
			// Gone: remove any Secret the cache had not seen yet when the finalizer ran.
			metrics.ForgetHabilitation(req.Namespace, req.Name)
			_, err := r.removeInjected(ctx, req.Namespace, req.Name, nil, nil)
			return ctrl.Result{}, err
		}
		return ctrl.Result{}, err
	}

	if r.writes.behind(h) {
		return ctrl.Result{RequeueAfter: cacheCatchUp}, nil
	}
	if !h.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, h)
	}

	orig := h.DeepCopy()
	var res result
	if !r.Options.IsCredentialsNamespace(h.Namespace) {
		// Fail closed, also for a Habilitation honoured before the flag changed.
		if _, err := r.removeInjected(ctx, h.Namespace, h.Name, h.Status.TargetSecret, nil); err != nil {
			return ctrl.Result{}, err
		}
		if controllerutil.RemoveFinalizer(h, jetonv1alpha1.FinalizerCleanup) {
			if err := r.Patch(ctx, h, client.MergeFrom(orig)); err != nil {
				return ctrl.Result{}, fmt.Errorf("removing finalizer: %w", err)
			}
			orig = h.DeepCopy()
		}
		h.Status.TargetSecret = nil
		res = stalled(jetonv1alpha1.ReasonNamespaceNotAllowed,
			"Habilitations are honoured only in the credentials namespaces (%s); nothing is injected from namespace %q. Move this Habilitation and its token Secret to a credentials namespace, or add %q to the operator's --credentials-namespaces flag.",
			strings.Join(r.Options.CredentialsNamespaces, ", "), h.Namespace, h.Namespace)
	} else {
		if controllerutil.AddFinalizer(h, jetonv1alpha1.FinalizerCleanup) {
			// Before anything is injected, so a Secret is never left behind.
			if err := r.Patch(ctx, h, client.MergeFrom(orig)); err != nil {
				return ctrl.Result{}, fmt.Errorf("adding finalizer: %w", err)
			}
			orig = h.DeepCopy()
		}
		var err error
		if res, err = r.reconcile(ctx, h); err != nil {
			return ctrl.Result{}, err
		}
	}

	if res.waiting {
		return ctrl.Result{RequeueAfter: res.requeueAfter}, nil
	}
	res.mark(&h.Status.Conditions, h.Generation, res.reason, res.message)
	h.Status.ObservedGeneration = h.Generation
	// A pass that only waits for the client's namespace leaves a request pending: the
	// pass after it gives the answer worth reporting.
	handleRequest(h, &h.Status.RequestStatus)
	if !equality.Semantic.DeepEqual(orig.Status, h.Status) {
		// Optimistic lock: a pass that read a stale copy (a watch event can outrun the
		// cache's view of this object's last status write) must not record a transition
		// again. Its conflict is no error: the newer version's own event brings it back.
		if err := r.Status().Patch(ctx, h, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			if apierrors.IsConflict(err) {
				return ctrl.Result{RequeueAfter: time.Second}, nil
			}
			return ctrl.Result{}, fmt.Errorf("writing status: %w", err)
		}
	}
	// Events once the transition is recorded, so each is told once.
	for _, f := range res.after {
		f()
	}
	if oldReason := conditions.ReadyReason(orig.Status.Conditions); oldReason != res.reason {
		r.event(h, res.warning, res.reason, "Reconcile", res.message)
		if res.onTransition != nil {
			res.onTransition()
		}
	}
	return ctrl.Result{RequeueAfter: res.requeueAfter}, nil
}

// reconcile runs the checks in order, injecting only when every one passes. Each refusal
// removes the injected Secret: credentials fail closed.
func (r *HabilitationReconciler) reconcile(ctx context.Context, h *jetonv1alpha1.Habilitation) (result, error) {
	failClosed := func(res result) (result, error) {
		if _, err := r.removeInjected(ctx, h.Namespace, h.Name, h.Status.TargetSecret, nil); err != nil {
			return result{}, err
		}
		h.Status.TargetSecret = nil
		// The same words whether or not this pass removed a Secret: a stable message
		// makes no status write on the next pass.
		res.message += " Nothing is injected meanwhile (fail closed)."
		return res, nil
	}

	if refusedForLabel(h.Status.Conditions) {
		return failClosed(stalled(jetonv1alpha1.ReasonSecretClientMismatch, "%s", labelRefusalKept))
	}

	// The client, and a namespace it really owns.
	c := &jetonv1alpha1.PublicClient{}
	if err := r.Get(ctx, types.NamespacedName{Name: h.Spec.ClientRef.Name}, c); err != nil {
		if !apierrors.IsNotFound(err) {
			return result{}, err
		}
		return failClosed(notReady(jetonv1alpha1.ReasonClientNotFound,
			"PublicClient %q does not exist: create it, or fix spec.clientRef.name (immutable: recreate the Habilitation).", h.Spec.ClientRef.Name))
	}
	if !c.DeletionTimestamp.IsZero() {
		return failClosed(notReady(jetonv1alpha1.ReasonClientDeleting,
			"PublicClient %q is being deleted; its tokens are no longer injected.", c.Name))
	}
	clientNS := c.TargetNamespace()
	if msg, err := r.clientNamespaceProblem(ctx, c); err != nil || msg != "" {
		if err != nil {
			return result{}, err
		}
		if age := r.now().Sub(h.CreationTimestamp.Time); clientSettingUp(c) &&
			meta.FindStatusCondition(h.Status.Conditions, jetonv1alpha1.ConditionReady) == nil && age < clientSetupGrace {
			// A new client and a new Habilitation applied together (a GitOps sync, a bulk
			// import): the client namespace is on its way, and its creation and the client's
			// status wake this Habilitation (Namespace and PublicClient watches). Writing
			// ClientNotReady now would only cost a status write and a Warning event per
			// Habilitation. It looks again only when the grace ends, should the client stay
			// stuck: a shorter safety net made 10,000 waiting Habilitations cost 84,000
			// passes while their clients were set up.
			return result{waiting: true, requeueAfter: clientSetupGrace - age + time.Second}, nil
		}
		return failClosed(notReady(jetonv1alpha1.ReasonClientNotReady, "%s See the PublicClient's Ready condition.", msg))
	}

	// The token.
	ref := h.Spec.TokenSecretRef
	key := cmp.Or(ref.Key, defaultTokenKey)
	src := &corev1.Secret{}
	if r.Options.isOwnerKey(h.Namespace, ref.Name) {
		return failClosed(stalled(jetonv1alpha1.ReasonInvalidToken, ownerKeyRefused, h.Namespace, ref.Name))
	}
	if err := r.Get(ctx, types.NamespacedName{Namespace: h.Namespace, Name: ref.Name}, src); err != nil {
		if !apierrors.IsNotFound(err) {
			return result{}, err
		}
		return failClosed(notReady(jetonv1alpha1.ReasonSecretNotFound,
			"Secret %s/%s (spec.tokenSecretRef) not found: create it with the token under key %q.", h.Namespace, ref.Name, key))
	}
	if owner := src.Labels[jetonv1alpha1.LabelClient]; owner != "" && owner != h.Spec.ClientRef.Name {
		// The credentials admin said whose token this is; an editor cannot say otherwise.
		return failClosed(stalled(jetonv1alpha1.ReasonSecretClientMismatch,
			"Secret %s/%s is labelled %s=%s: its token is client %q's, not client %q's. Reference client %q's own token Secret.",
			h.Namespace, ref.Name, jetonv1alpha1.LabelClient, owner, owner, h.Spec.ClientRef.Name, h.Spec.ClientRef.Name))
	}
	raw, ok := src.Data[key]
	if !ok {
		return failClosed(stalled(jetonv1alpha1.ReasonSecretKeyNotFound,
			"Secret %s/%s has no key %q (keys: %s): put the token under that key or fix spec.tokenSecretRef.key.", h.Namespace, ref.Name, key, strings.Join(slices.Sorted(maps.Keys(src.Data)), ", ")))
	}
	tok, err := token.Normalize(raw)
	var info token.Info
	if err == nil {
		info, err = token.Decode(h.Spec.API, tok)
	}
	if err != nil {
		// The token package guarantees its errors never quote the token.
		return failClosed(stalled(jetonv1alpha1.ReasonInvalidToken,
			"Secret %s/%s key %q does not hold a valid token: %v. Put the token issued for this habilitation there.", h.Namespace, ref.Name, key, err))
	}
	fp := token.Fingerprint(tok)
	prevFP := h.Status.TokenFingerprint
	setTokenStatus(&h.Status.TokenStatus, h, fp, info)

	// One token, one client.
	self := injection.Binding{Kind: injection.KindHabilitation, Namespace: h.Namespace, Name: h.Name, Client: h.Spec.ClientRef.Name, Created: h.CreationTimestamp.Time}
	verdict, labelledFor, err := r.bindings.arbitrate(ctx, self, fp)
	if err != nil {
		return result{}, err
	}
	if len(labelledFor) > 0 && (len(labelledFor) > 1 || labelledFor[0] != h.Spec.ClientRef.Name) {
		return failClosed(stalled(jetonv1alpha1.ReasonSecretClientMismatch,
			"the token in Secret %s/%s (fingerprint %s) is labelled for client %s (%s on a Secret holding it): it is not client %q's. Reference client %q's own token Secret.",
			h.Namespace, ref.Name, fp, strings.Join(labelledFor, ", "), jetonv1alpha1.LabelClient, h.Spec.ClientRef.Name, h.Spec.ClientRef.Name))
	}
	switch verdict.Outcome {
	case injection.TechnicalTokenReuse:
		return failClosed(stalled(jetonv1alpha1.ReasonTechnicalTokenReuse,
			"the token in Secret %s/%s (fingerprint %s) is the technical token of TechnicalToken %s/%s, created before this Habilitation or in the same second: a technical token must never reach a client workload. Put this client's own token in the Secret.",
			h.Namespace, ref.Name, fp, verdict.With.Namespace, verdict.With.Name))
	case injection.TokenConflict:
		res := stalled(jetonv1alpha1.ReasonTokenConflict,
			"the token in Secret %s/%s (fingerprint %s) is also bound to client %q by Habilitation %s/%s, created before this one or in the same second: a token must serve one client only. Put client %q's own token in the Secret.",
			h.Namespace, ref.Name, fp, verdict.With.Client, verdict.With.Namespace, verdict.With.Name, h.Spec.ClientRef.Name)
		// The older binding keeps working, but its owners must know that their token was
		// handed to another client: it may have leaked and need regenerating.
		res.onTransition = func() {
			winner := &jetonv1alpha1.Habilitation{}
			if err := r.Get(ctx, types.NamespacedName{Namespace: verdict.With.Namespace, Name: verdict.With.Name}, winner); err == nil {
				r.event(winner, true, jetonv1alpha1.ReasonTokenConflict, "Arbitrate", fmt.Sprintf(
					"Habilitation %s/%s of client %q holds the same token (fingerprint %s) and was refused; this Habilitation keeps it. If the token was handed out by mistake, regenerate it.",
					h.Namespace, h.Name, h.Spec.ClientRef.Name, fp))
			}
		}
		return failClosed(res)
	}

	// Where the client's workloads will send the token: an official host, or one the
	// cluster admin allowed.
	baseURL := publicapi.BaseURL(h.Spec.API, h.Spec.Environment, h.Spec.BaseURL)
	if err := r.Options.APIHosts.Check(h.Spec.API, baseURL); err != nil {
		return failClosed(stalled(jetonv1alpha1.ReasonAPIHostNotAllowed, "spec.baseURL is refused: %v.", err))
	}

	// The target Secret.
	var after []func()
	target := types.NamespacedName{Namespace: clientNS, Name: h.TargetSecretName()}
	if _, err := r.removeInjected(ctx, h.Namespace, h.Name, h.Status.TargetSecret, &target); err != nil {
		return result{}, err // the target moved: the old Secret goes
	}
	proofKey, err := r.ownerKey.get(ctx)
	if err != nil {
		return result{}, err
	}
	desired := injection.DesiredSecret(h, c, tok, fp, baseURL)
	desired.Annotations[jetonv1alpha1.AnnotationOwnerProof] = injection.SecretProof(proofKey, desired)
	wrote, clash, err := r.applyTarget(ctx, h, desired)
	if err != nil {
		return result{}, err
	}
	if clash {
		h.Status.TargetSecret = nil
		return stalled(jetonv1alpha1.ReasonTargetSecretConflict,
			"Secret %s/%s already exists and jeton does not manage it for this Habilitation, so it is left untouched: delete or rename it, or choose another spec.target.secretName.", target.Namespace, target.Name), nil
	}
	h.Status.TargetSecret = &jetonv1alpha1.SecretReference{Namespace: target.Namespace, Name: target.Name}

	if rotated(fp, prevFP, token.LegacyFingerprint(tok)) {
		// Rotation. The Secret is written; the workloads using it restart before the new
		// fingerprint is recorded in status, so a crash in between redoes the
		// (idempotent) restart exactly once.
		var restarted []string
		if h.Spec.RestartWorkloads == nil || *h.Spec.RestartWorkloads {
			var done bool
			if restarted, done, err = r.restarts.request(client.ObjectKeyFromObject(h), h.Spec.ClientRef.Name, target, fp); err != nil {
				return result{}, err
			}
			if !done {
				// Gathered with the other rotations of the client namespace: the restarts
				// wake this Habilitation when they are done.
				return result{waiting: true, requeueAfter: restartWait}, nil
			}
		}
		rotatedNote := fmt.Sprintf("New token (fingerprint %s, was %s) written to Secret %s/%s.", fp, prevFP, target.Namespace, target.Name)
		after = append(after, func() { r.event(h, false, eventRotated, "Rotate", rotatedNote) })
		if len(restarted) > 0 {
			metrics.WorkloadRestarted(h.Namespace, h.Name, h.Spec.ClientRef.Name, string(h.Spec.API), string(h.Spec.Environment), len(restarted))
			restartedNote := fmt.Sprintf("Restarted %d workload(s) in namespace %s using Secret %s for the new token: %s.",
				len(restarted), target.Namespace, target.Name, strings.Join(restarted, ", "))
			after = append(after, func() { r.event(h, false, eventRestarted, "Restart", restartedNote) })
		}
		now := metav1.NewTime(r.now())
		h.Status.LastRotationTime = &now
	} else if wrote && prevFP == fp && isInjectedReason(conditions.ReadyReason(h.Status.Conditions)) {
		// Conditions still hold the previous pass: the Secret was there and is rewritten.
		r.event(h, false, eventRestored, "Inject", fmt.Sprintf("Secret %s/%s was missing or differed from the desired content (edited or deleted by hand, or the spec or the client's SIRET changed); it has been rewritten.", target.Namespace, target.Name))
	}

	res := r.judgeToken(h, info)
	res.after = after
	return res, nil
}

// judgeToken gives the Ready condition of an injected token: expiry first, then scopes.
func (r *HabilitationReconciler) judgeToken(h *jetonv1alpha1.Habilitation, info token.Info) result {
	renewBefore := 90 * 24 * time.Hour
	if h.Spec.RenewBefore != nil {
		renewBefore = h.Spec.RenewBefore.Duration
	}
	var exp *time.Time
	if h.Status.ExpiresAt != nil {
		t := h.Status.ExpiresAt.Time
		exp = &t
	}
	ev := expiry.Evaluate(r.now(), exp, renewBefore)
	var requeue time.Duration
	if ev.Next > 0 {
		// Just past the threshold, so the next pass sees the new state.
		requeue = min(ev.Next+time.Second, maxRequeue)
	}
	target := h.Status.TargetSecret.Namespace + "/" + h.Status.TargetSecret.Name
	source := h.Namespace + "/" + h.Spec.TokenSecretRef.Name
	// Messages carry absolute dates only, never "in N days", so they do not change (and
	// cost a status write) as time passes.
	var expiresAt string
	if exp != nil {
		expiresAt = exp.UTC().Format(time.RFC3339)
	}

	var res result
	var missing []string
	if h.Spec.API != jetonv1alpha1.DemarchesNumeriques {
		missing = token.MissingScopes(info.Scopes, h.Spec.ExpectedScopes)
	}
	switch {
	case ev.State == expiry.Expired:
		// An expired token is harmless, so it stays injected: workloads get a clear 401
		// from the API rather than a missing Secret.
		res = stalled(jetonv1alpha1.ReasonTokenExpired,
			"the token (fingerprint %s) expired at %s and the API refuses it: renew it on the API portal and put the new token in Secret %s. The expired token stays in Secret %s, where it is harmless.",
			h.Status.TokenFingerprint, expiresAt, source, target)
	case len(missing) > 0:
		// Still this client's own token, so it stays injected; calls needing the missing
		// scopes will fail until the habilitation is extended.
		res = stalled(jetonv1alpha1.ReasonScopesMissing,
			"the token (fingerprint %s) lacks scopes required by spec.expectedScopes: %s. It is still injected into Secret %s, but calls needing these scopes will be refused: extend the habilitation (DataPass) and put the new token in Secret %s, or fix spec.expectedScopes.",
			h.Status.TokenFingerprint, strings.Join(missing, ", "), target, source)
	case ev.State == expiry.ExpiringSoon:
		res = result{mark: conditions.MarkReady, reason: jetonv1alpha1.ReasonTokenExpiringSoon, warning: true,
			message: fmt.Sprintf("Token (fingerprint %s) injected into Secret %s, but it expires at %s: renew it on the API portal and put the new token in Secret %s before then.",
				h.Status.TokenFingerprint, target, expiresAt, source)}
	case ev.State == expiry.Unknown:
		res = result{mark: conditions.MarkReady, reason: jetonv1alpha1.ReasonInjected,
			message: fmt.Sprintf("Token (fingerprint %s) injected into Secret %s. Its expiry is unknown: set spec.expiresAt to be warned before it expires.", h.Status.TokenFingerprint, target)}
	default:
		res = result{mark: conditions.MarkReady, reason: jetonv1alpha1.ReasonInjected,
			message: fmt.Sprintf("Token (fingerprint %s) injected into Secret %s; it expires at %s.", h.Status.TokenFingerprint, target, expiresAt)}
	}
	res.requeueAfter = requeue
	return res
}

func isInjectedReason(reason string) bool {
	switch reason {
	case jetonv1alpha1.ReasonInjected, jetonv1alpha1.ReasonTokenExpiringSoon, jetonv1alpha1.ReasonTokenExpired, jetonv1alpha1.ReasonScopesMissing:
		return true
	}
	return false
}

// setTokenStatus records what was decoded from the token; never the token.
func setTokenStatus(st *jetonv1alpha1.TokenStatus, h *jetonv1alpha1.Habilitation, fp string, info token.Info) {
	st.TokenFingerprint = fp
	st.TokenID = info.ID
	st.IssuedAt = metaTime(info.IssuedAt)
	st.ExpiresAt = metaTime(info.ExpiresAt)
	if st.ExpiresAt == nil && h.Spec.ExpiresAt != nil {
		t := *h.Spec.ExpiresAt
		st.ExpiresAt = &t
	}
	st.Scopes = info.Scopes
}

func metaTime(t *time.Time) *metav1.Time {
	if t == nil {
		return nil
	}
	// Status round-trips through RFC 3339 with second precision: truncate so that an
	// unchanged token compares equal and makes no status write.
	mt := metav1.NewTime(t.UTC().Truncate(time.Second))
	return &mt
}

// clientSettingUp reports whether the PublicClient has not yet reported on its current
// generation (its reconciler has not run yet): its namespace may simply not exist yet.
func clientSettingUp(c *jetonv1alpha1.PublicClient) bool {
	ready := meta.FindStatusCondition(c.Status.Conditions, jetonv1alpha1.ConditionReady)
	return ready == nil || ready.ObservedGeneration < c.Generation
}

// clientNamespaceProblem says why jeton must not write into the client's namespace, or ""
// when the namespace exists, is not terminating and carries jeton.dev/client=<client>.
// Checking the label here, not only the client's Ready condition, guarantees jeton never
// writes into a namespace the client does not own, whatever the PublicClient reconciler did.
func (r *HabilitationReconciler) clientNamespaceProblem(ctx context.Context, c *jetonv1alpha1.PublicClient) (string, error) {
	if rc := meta.FindStatusCondition(c.Status.Conditions, jetonv1alpha1.ConditionReady); rc != nil && rc.Reason == jetonv1alpha1.ReasonNamespaceOwnedElsewhere {
		return fmt.Sprintf("PublicClient %q is not Ready (%s): %s", c.Name, rc.Reason, rc.Message), nil
	}
	ns := &corev1.Namespace{}
	// The cache holds only namespaces labelled jeton.dev/client: anything else reads as absent.
	if err := r.Get(ctx, types.NamespacedName{Name: c.TargetNamespace()}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Sprintf("Namespace %q of PublicClient %q does not exist or is not labelled %s=%s yet.", c.TargetNamespace(), c.Name, jetonv1alpha1.LabelClient, c.Name), nil
		}
		return "", err
	}
	if owner := ns.Labels[jetonv1alpha1.LabelClient]; owner != c.Name {
		return fmt.Sprintf("Namespace %q belongs to client %q, not to PublicClient %q.", ns.Name, owner, c.Name), nil
	}
	// jeton's own record, not the label (anyone who can create a namespace can label it):
	// the PublicClient reconciler verified this very namespace (UID) for the client. A
	// status written before UIDs were recorded names the namespace only.
	if st := c.Status; st.Namespace != ns.Name || (st.NamespaceUID != "" && st.NamespaceUID != ns.UID) {
		return fmt.Sprintf("Namespace %q is not (or no longer) the namespace jeton set up for PublicClient %q.", ns.Name, c.Name), nil
	}
	if why := r.Options.reservedBecause(ns.Name); why != "" {
		return fmt.Sprintf("Namespace %q is reserved (%s).", ns.Name, why), nil
	}
	if !ns.DeletionTimestamp.IsZero() {
		return fmt.Sprintf("Namespace %q of PublicClient %q is being deleted.", ns.Name, c.Name), nil
	}
	return "", nil
}

// rotated reports whether workloads must be restarted for the token fp: status, jeton's
// own record, names another token. Nothing a tenant can write counts: an edited
// fingerprint annotation on the injected Secret is drift, repaired without a restart.
// Status is written after the restarts, so a crash in between redoes them (idempotent).
// legacyFP is the token's fingerprint as recorded before canonical fingerprints: the same
// token, so no restart.
func rotated(fp, statusFP, legacyFP string) bool {
	return statusFP != "" && statusFP != fp && statusFP != legacyFP
}

// applyTarget writes desired with server-side apply, unless it is already there (no write
// in steady state) or a Secret of that name exists that is not this Habilitation's (clash:
// left untouched).
func (r *HabilitationReconciler) applyTarget(ctx context.Context, h *jetonv1alpha1.Habilitation, desired *corev1.Secret) (wrote, clash bool, err error) {
	key := client.ObjectKeyFromObject(desired)
	existing := &corev1.Secret{}
	err = r.Get(ctx, key, existing, client.UnsafeDisableDeepCopy)
	if err == nil && injection.ManagedBy(existing, h) && injection.UpToDate(existing, desired) {
		return false, false, nil
	}
	if apierrors.IsNotFound(err) {
		// The cache holds every Secret jeton manages, and no other Secret of a client
		// namespace: this one is absent, or someone else's. Create tells which in the one
		// request a new client needs anyway (no read first); it never touches a Secret that
		// exists. The Secret's later writes are server-side applies by the same field
		// manager: this first one is recorded as an update, which changes nothing in
		// practice, as jeton always applies the full Secret and recreates it when keys
		// must go (below).
		err = r.Create(ctx, desired.DeepCopy(), client.FieldOwner(jetonv1alpha1.ManagedByValue))
		if err == nil {
			log.FromContext(ctx).V(1).Info("injected token", "secret", key.String(), "fingerprint", desired.Annotations[jetonv1alpha1.AnnotationTokenFingerprint])
			return true, false, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return false, false, fmt.Errorf("creating Secret %s: %w", key, err)
		}
	}
	if err == nil || apierrors.IsAlreadyExists(err) {
		// The cache holds managed Secrets in digest form: read the Secret itself, to see
		// whose it is and what it holds.
		existing = &corev1.Secret{}
		err = r.APIReader.Get(ctx, key, existing)
		if apierrors.IsNotFound(err) {
			existing, err = nil, nil
		}
	}
	if err != nil {
		return false, false, fmt.Errorf("reading Secret %s: %w", key, err)
	}
	if existing != nil {
		if !injection.ManagedBy(existing, h) {
			return false, true, nil
		}
		if injection.UpToDate(existing, desired) {
			return false, false, nil
		}
		if existing.Type != desired.Type || hasForeignKeys(existing.Data, desired.Data) {
			// Keys added by hand belong to their field manager and a Secret's type is
			// immutable: server-side apply can fix neither, so the Secret is recreated.
			if err := r.Delete(ctx, existing, client.Preconditions{UID: &existing.UID}); err != nil && !apierrors.IsNotFound(err) {
				return false, false, fmt.Errorf("recreating Secret %s: %w", key, err)
			}
		}
	}
	ac := corev1ac.Secret(desired.Name, desired.Namespace).
		WithLabels(desired.Labels).
		WithAnnotations(desired.Annotations).
		WithType(desired.Type).
		WithData(desired.Data)
	if err := r.Apply(ctx, ac, client.FieldOwner(jetonv1alpha1.ManagedByValue), client.ForceOwnership); err != nil {
		// API errors name the object and fields, never Secret values.
		return false, false, fmt.Errorf("applying Secret %s: %w", key, err)
	}
	log.FromContext(ctx).V(1).Info("injected token", "secret", key.String(), "fingerprint", desired.Annotations[jetonv1alpha1.AnnotationTokenFingerprint])
	return true, false, nil
}

// hasForeignKeys reports whether have holds a key that want does not.
func hasForeignKeys(have, want map[string][]byte) bool {
	for k := range have {
		if _, ok := want[k]; !ok {
			return true
		}
	}
	return false
}

// removeInjected deletes the Secrets injected for the Habilitation namespace/name, except
// keep. It reads the cache, which holds every managed Secret; a Secret created too recently
// to be there is caught when its watch event maps back here.
//
// Labels alone prove nothing (anyone who can create a Secret can copy them), so a labelled
// Secret is removed only when jeton wrote it: it carries a valid owner proof for its name
// and labels, or it is the Secret the Habilitation's status records. Never anything else.
func (r *HabilitationReconciler) removeInjected(ctx context.Context, namespace, name string, recorded *jetonv1alpha1.SecretReference, keep *types.NamespacedName) (int, error) {
	list := &corev1.SecretList{}
	if err := r.List(ctx, list, client.MatchingFields{IndexInjectedFor: namespace + "/" + name}); err != nil {
		return 0, fmt.Errorf("listing injected Secrets: %w", err)
	}
	removed := 0
	var keyErr error
	for i := range list.Items {
		s := &list.Items[i]
		if keep != nil && client.ObjectKeyFromObject(s) == *keep {
			continue
		}
		// The recorded Secret goes even when the key cannot be read (fail closed).
		if recorded == nil || recorded.Namespace != s.Namespace || recorded.Name != s.Name {
			key, err := r.ownerKey.get(ctx)
			if err != nil {
				keyErr = err
				continue
			}
			if !injection.WrittenByJeton(key, s) {
				continue
			}
		}
		if err := r.Delete(ctx, s, client.Preconditions{UID: &s.UID}); err != nil && !apierrors.IsNotFound(err) {
			return removed, fmt.Errorf("deleting injected Secret %s/%s: %w", s.Namespace, s.Name, err)
		}
		removed++
		log.FromContext(ctx).Info("removed injected Secret", "secret", s.Namespace+"/"+s.Name)
		r.eventFor(ctx, namespace, name, eventRemoved, fmt.Sprintf("Removed injected Secret %s/%s.", s.Namespace, s.Name))
	}
	return removed, keyErr
}

// eventFor records a Removed event on the Habilitation if it still exists.
func (r *HabilitationReconciler) eventFor(ctx context.Context, namespace, name, reason, msg string) {
	h := &jetonv1alpha1.Habilitation{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, h); err == nil {
		r.event(h, false, reason, "Remove", msg)
	}
}

// finalize removes the injected Secrets, then the finalizer.
func (r *HabilitationReconciler) finalize(ctx context.Context, h *jetonv1alpha1.Habilitation) error {
	if !controllerutil.ContainsFinalizer(h, jetonv1alpha1.FinalizerCleanup) {
		return nil
	}
	if _, err := r.removeInjected(ctx, h.Namespace, h.Name, h.Status.TargetSecret, nil); err != nil {
		return err
	}
	metrics.ForgetHabilitation(h.Namespace, h.Name)
	orig := h.DeepCopy()
	controllerutil.RemoveFinalizer(h, jetonv1alpha1.FinalizerCleanup)
	if err := r.Patch(ctx, h, client.MergeFrom(orig)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing finalizer: %w", err)
	}
	return nil
}

// rotationComing reports whether a Habilitation of clientName that restarts workloads has
// a new token in its source Secret that it has not injected yet and that is not among
// rotated (Secret name → fingerprint): its request for a restart is on its way. Only those
// with an injected Secret count; one that fails closed injects nothing to restart for.
func (r *HabilitationReconciler) rotationComing(ctx context.Context, clientName string, rotated map[string]string) bool {
	habs := &jetonv1alpha1.HabilitationList{}
	if err := r.List(ctx, habs, client.MatchingFields{IndexHabilitationClient: clientName}); err != nil {
		return false
	}
	for i := range habs.Items {
		h := &habs.Items[i]
		if h.Status.TargetSecret == nil || (h.Spec.RestartWorkloads != nil && !*h.Spec.RestartWorkloads) {
			continue
		}
		fp := r.bindings.sourceFingerprint(ctx, h.Namespace, h.Spec.TokenSecretRef)
		if fp != "" && fp != h.Status.TokenFingerprint && fp != rotated[h.Status.TargetSecret.Name] {
			return true
		}
	}
	return false
}

// mapTokenHolder maps a Habilitation or TechnicalToken to the Habilitations holding the same
// token (by recorded and by current fingerprint), so a refused one is re-evaluated when the
// holder changes token or goes away.
func (r *HabilitationReconciler) mapTokenHolder(ctx context.Context, obj client.Object) []reconcile.Request {
	var fps []string
	// A Habilitation is reconciled for its own events; a TechnicalToken of the same
	// namespace and name is another object, whose holders all need a look.
	var except types.NamespacedName
	switch o := obj.(type) {
	case *jetonv1alpha1.Habilitation:
		fps = append(fps, o.Status.TokenFingerprint, r.bindings.sourceFingerprint(ctx, o.Namespace, o.Spec.TokenSecretRef))
		except = client.ObjectKeyFromObject(o)
	case *jetonv1alpha1.TechnicalToken:
		fps = append(fps, o.Status.TokenFingerprint, r.bindings.sourceFingerprint(ctx, o.Namespace, o.Spec.TokenSecretRef))
	}
	return r.holdersOf(ctx, except, fps...)
}

func (r *HabilitationReconciler) holdersOf(ctx context.Context, except types.NamespacedName, fps ...string) []reconcile.Request {
	var reqs []reconcile.Request
	for _, fp := range slices.Compact(slices.Sorted(slices.Values(fps))) {
		if fp == "" {
			continue
		}
		habs := &jetonv1alpha1.HabilitationList{}
		if err := r.List(ctx, habs, client.MatchingFields{IndexTokenFingerprint: fp}); err != nil {
			log.FromContext(ctx).Error(err, "listing Habilitations by token fingerprint")
			continue
		}
		for _, h := range habs.Items {
			if k := client.ObjectKeyFromObject(&h); k != except {
				reqs = append(reqs, reconcile.Request{NamespacedName: k})
			}
		}
	}
	return reqs
}

func (r *HabilitationReconciler) mapClient(ctx context.Context, obj client.Object) []reconcile.Request {
	return r.habilitationsOfClient(ctx, obj.GetName())
}

func (r *HabilitationReconciler) mapNamespace(ctx context.Context, obj client.Object) []reconcile.Request {
	if c := obj.GetLabels()[jetonv1alpha1.LabelClient]; c != "" {
		return r.habilitationsOfClient(ctx, c)
	}
	return nil
}

func (r *HabilitationReconciler) habilitationsOfClient(ctx context.Context, clientName string) []reconcile.Request {
	habs := &jetonv1alpha1.HabilitationList{}
	if err := r.List(ctx, habs, client.MatchingFields{IndexHabilitationClient: clientName}); err != nil {
		log.FromContext(ctx).Error(err, "listing Habilitations by client", "client", clientName)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(habs.Items))
	for _, h := range habs.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&h)})
	}
	return reqs
}

// mapSecret maps an injected Secret back to its Habilitation (drift), and a source Secret
// of a credentials namespace to the Habilitations reading it (rotation) and to those holding
// the same token as its readers (conflicts that may appear or go away).
func (r *HabilitationReconciler) mapSecret(ctx context.Context, obj client.Object) []reconcile.Request {
	var reqs []reconcile.Request
	l := obj.GetLabels()
	if l[jetonv1alpha1.LabelManagedBy] == jetonv1alpha1.ManagedByValue && l[jetonv1alpha1.LabelHabilitation] != "" {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{
			Namespace: l[jetonv1alpha1.LabelHabilitationNamespace], Name: l[jetonv1alpha1.LabelHabilitation]}})
	}
	if !r.Options.IsCredentialsNamespace(obj.GetNamespace()) {
		return reqs
	}
	none := types.NamespacedName{}
	habs := &jetonv1alpha1.HabilitationList{}
	if err := r.List(ctx, habs, client.InNamespace(obj.GetNamespace()), client.MatchingFields{IndexTokenSecret: obj.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "listing Habilitations by token Secret")
		return reqs
	}
	for i := range habs.Items {
		h := &habs.Items[i]
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(h)})
		reqs = append(reqs, r.holdersOf(ctx, none, h.Status.TokenFingerprint, r.bindings.sourceFingerprint(ctx, h.Namespace, h.Spec.TokenSecretRef))...)
	}
	tts := &jetonv1alpha1.TechnicalTokenList{}
	if err := r.List(ctx, tts, client.InNamespace(obj.GetNamespace()), client.MatchingFields{IndexTokenSecret: obj.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "listing TechnicalTokens by token Secret")
		return reqs
	}
	for i := range tts.Items {
		t := &tts.Items[i]
		reqs = append(reqs, r.holdersOf(ctx, none, t.Status.TokenFingerprint, r.bindings.sourceFingerprint(ctx, t.Namespace, t.Spec.TokenSecretRef))...)
	}
	return reqs
}

func (r *HabilitationReconciler) event(h *jetonv1alpha1.Habilitation, warning bool, reason, action, note string) {
	typ := corev1.EventTypeNormal
	if warning {
		typ = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(h, nil, typ, reason, action, "%s", note)
}
