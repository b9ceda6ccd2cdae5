package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/conditions"
	"github.com/jeton-dev/jeton/internal/gateway"
	"github.com/jeton-dev/jeton/internal/injection"
	"github.com/jeton-dev/jeton/internal/metrics"
	"github.com/jeton-dev/jeton/internal/publicapi"
	"github.com/jeton-dev/jeton/internal/token"
	"github.com/jeton-dev/jeton/internal/tokensource"
)

const (
	// clientSetupGrace is how long after its creation a Habilitation may wait silently at all
	// for a client the PublicClient reconciler has not reported on yet. A bulk import of
	// 10,000 clients keeps that reconciler busy for minutes (at the default 50 QPS, its
	// status writes alone take over 3): with 2 minutes, most Habilitations of the import
	// wrote ClientNotReady and a Warning event before Injected (1.96 status writes and 2.78
	// events per client, measured). A client that reports a problem is reported at once.
	clientSetupGrace = 15 * time.Minute
)

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
	// gatewayKey is the key of the gateway credentials (Gateway delivery).
	gatewayKey *ownerKey
	// writes tells a stale cache copy from a current one.
	writes *ownWrites
	// restarts restarts the workloads using a rotated token.
	restarts *workloadRestarts
	// repairs rate-limits the repairs of each injected Secret (drift).
	repairs injection.RepairBackoff
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
	r.gatewayKey = newGatewayCredentialKey(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetClient(), opts)
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

// Reconcile brings one Habilitation's injected Secret to the desired state: gather and
// decide in pass, act in inject, status written once by finish.
func (r *HabilitationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	h := &jetonv1alpha1.Habilitation{}
	if err := r.Get(ctx, req.NamespacedName, h); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		// Gone: remove any Secret the cache had not seen yet when the finalizer ran.
		metrics.ForgetHabilitation(req.Namespace, req.Name)
		_, err := r.removeInjected(ctx, req.Namespace, req.Name, nil, nil)
		return ctrl.Result{}, err
	}
	if r.writes.behind(h) {
		return ctrl.Result{RequeueAfter: cacheCatchUp}, nil
	}
	if !h.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, h)
	}
	orig := h.DeepCopy()
	out := r.pass(ctx, h, &orig)
	return finish(ctx, r.Client, r.Recorder, h, orig, out)
}

// pass runs the checks in order, injecting only when every one passes. Each refusal
// removes the injected Secret: credentials fail closed. orig follows the finalizer's
// writes, so that the status write compares with what the API server holds.
func (r *HabilitationReconciler) pass(ctx context.Context, h *jetonv1alpha1.Habilitation, orig **jetonv1alpha1.Habilitation) outcome {
	if v := injection.NamespaceNotAllowed(h, r.Options.CredentialsNamespaces); v != nil {
		// Fail closed, also for a Habilitation honoured before the flag changed.
		if _, err := r.removeInjected(ctx, h.Namespace, h.Name, h.Status.TargetSecret, nil); err != nil {
			return failed("removing the injected Secret", err)
		}
		if err := r.setFinalizer(ctx, h, orig, false); err != nil {
			return failed("removing the finalizer", err)
		}
		h.Status.TargetSecret = nil
		return announced(*v)
	}
	// Before anything is injected, so a Secret is never left behind.
	if err := r.setFinalizer(ctx, h, orig, true); err != nil {
		return failed("adding the finalizer", err)
	}
	if v := injection.RefusedForLabel(h.Status.Conditions); v != nil {
		return r.failClosed(ctx, h, v)
	}

	// The client, and a namespace it really owns.
	c, nsProblem, err := r.readClient(ctx, h)
	if err != nil {
		return failed("reading the client", err)
	}
	if v, wait := injection.ClientProblem(r.now(), h, c, nsProblem, clientSetupGrace); wait {
		// The client namespace is on its way: its creation and the client's status wake
		// this Habilitation (Namespace and PublicClient watches). Writing ClientNotReady
		// now would only cost a status write and a Warning event per Habilitation. It
		// looks again only when the grace ends, should the client stay stuck: a shorter
		// safety net made 10,000 waiting Habilitations cost 84,000 passes while their
		// clients were set up.
		return outcome{waiting: true, requeueAfter: clientSetupGrace - r.now().Sub(h.CreationTimestamp.Time) + time.Second}
	} else if v != nil {
		return r.failClosed(ctx, h, v)
	}

	// The token, this client's only. What was delivered before is read first: bindToken
	// records the token's fingerprint in status.
	prevTokenFP, prevDelivered := h.Status.TokenFingerprint, injection.PreviousDelivered(&h.Status)
	tok, v, warnHolder, err := r.bindToken(ctx, h)
	if err != nil {
		return failed("reading the token", err)
	}
	if v != nil {
		out := r.failClosed(ctx, h, v)
		out.onTransition = warnHolder
		return out
	}

	// Where the client's workloads will send the token: an official host, or one the
	// cluster admin allowed.
	baseURL := publicapi.BaseURL(h.Spec.API, h.Spec.Environment, h.Spec.BaseURL)
	if v := injection.HostRefused(r.Options.APIHosts.Check(h.Spec.API, baseURL)); v != nil {
		return r.failClosed(ctx, h, v)
	}
	delivery := injection.EffectiveDelivery(h, r.Options.DefaultDelivery)
	if delivery == jetonv1alpha1.DeliveryGateway && r.Options.GatewayURL == "" {
		// The operator's flags are wrong, not the Habilitation: nothing is written or
		// removed. status keeps the delivery in force and what it delivered.
		h.Status.DeliveredFingerprint = prevDelivered
		return announced(*injection.GatewayNotConfigured(h))
	}
	return r.inject(ctx, h, c, tok, delivery, prevTokenFP, prevDelivered, baseURL)
}

// failClosed removes the injected Secret for refusal v.
func (r *HabilitationReconciler) failClosed(ctx context.Context, h *jetonv1alpha1.Habilitation, v *conditions.Verdict) outcome {
	if _, err := r.removeInjected(ctx, h.Namespace, h.Name, h.Status.TargetSecret, nil); err != nil {
		return failed("removing the injected Secret", err)
	}
	h.Status.TargetSecret = nil
	v.Message += injection.FailClosed
	return announced(*v)
}

// bindToken reads h's token, records what it says about itself in status, and checks that
// it is bound to h's client only. v is a refusal; warnHolder, for a token another
// Habilitation holds, warns that one's owners.
func (r *HabilitationReconciler) bindToken(ctx context.Context, h *jetonv1alpha1.Habilitation) (tok tokensource.Token, v *conditions.Verdict, warnHolder func(), err error) {
	tok, v, err = readToken(ctx, r.Client, r.Options, tokensource.Reader{Namespace: h.Namespace, Ref: h.Spec.TokenSecretRef,
		API: h.Spec.API, Client: h.Spec.ClientRef.Name, Noun: "token", Issued: "the token issued for this habilitation"})
	if err != nil || v != nil {
		return tok, v, nil, err
	}
	h.Status.TokenStatus = tokensource.Status(tok, h.Spec.API, h.Spec.ExpiresAt)
	self := injection.Binding{Kind: injection.KindHabilitation, Namespace: h.Namespace, Name: h.Name, Client: h.Spec.ClientRef.Name, Created: h.CreationTimestamp.Time}
	verdict, labelledFor, err := r.bindings.arbitrate(ctx, self, tok.Fingerprint)
	if err != nil {
		return tok, nil, nil, err
	}
	v = injection.BindingProblem(h, tok.Fingerprint, verdict, labelledFor)
	if v != nil && v.Reason == jetonv1alpha1.ReasonTokenConflict {
		warnHolder = func() { r.warnTokenHolder(ctx, h, verdict.With, tok.Fingerprint) }
	}
	return tok, v, warnHolder, nil
}

// announced is the outcome of verdict v, told in an event when Ready turns to its reason.
func announced(v conditions.Verdict) outcome {
	return outcome{Verdict: v, announce: true}
}

// deliver is what h's Secret delivers: the token and the API's baseURL (Direct), or a
// gateway credential for h and the gateway's URL (Gateway). legacyFP is the token's
// fingerprint as recorded before canonical fingerprints (Direct only: see
// injection.Rotated).
func (r *HabilitationReconciler) deliver(ctx context.Context, h *jetonv1alpha1.Habilitation, delivery jetonv1alpha1.Delivery, tok tokensource.Token, baseURL string) (d injection.Delivered, legacyFP string, err error) {
	if delivery != jetonv1alpha1.DeliveryGateway {
		return injection.DirectDelivery(tok.Value, tok.Fingerprint, baseURL), token.LegacyFingerprint(tok.Value), nil
	}
	key, err := r.gatewayKey.get(ctx)
	if err != nil {
		return injection.Delivered{}, "", err
	}
	cred := gateway.MintCredential(key, string(h.UID), h.Annotations[jetonv1alpha1.AnnotationGatewayCredentialRotation])
	return injection.GatewayDelivery(cred, r.Options.GatewayURL), "", nil
}

// inject writes what h delivers (deliver) into the client namespace and, when that changed
// (injection.Rotated on the delivered fingerprints), has the workloads using it restarted
// before status records the new fingerprint. In Gateway delivery a new API token changes
// nothing there: no write, no restart; the gateway reads the token itself.
func (r *HabilitationReconciler) inject(ctx context.Context, h *jetonv1alpha1.Habilitation, c *jetonv1alpha1.PublicClient, tok tokensource.Token, delivery jetonv1alpha1.Delivery, prevTokenFP, prevFP, baseURL string) outcome {
	target := types.NamespacedName{Namespace: c.TargetNamespace(), Name: h.TargetSecretName()}
	if _, err := r.removeInjected(ctx, h.Namespace, h.Name, h.Status.TargetSecret, &target); err != nil {
		return failed("removing the Secret of the previous target", err) // the target moved: the old Secret goes
	}
	proofKey, err := r.ownerKey.get(ctx)
	if err != nil {
		return failed("reading the owner-proof key", err)
	}
	d, legacyFP, err := r.deliver(ctx, h, delivery, tok, baseURL)
	if err != nil {
		return failed("reading the gateway credential key", err)
	}
	fp := d.Fingerprint
	desired := injection.DesiredSecret(h, c, d.Token, fp, d.BaseURL)
	desired.Annotations[jetonv1alpha1.AnnotationOwnerProof] = injection.SecretProof(proofKey, desired)
	if wait := r.repairWait(ctx, h, desired, fp, prevFP); wait > 0 {
		// A tenant keeps deleting or editing its Secret: the repair waits (see
		// injection.RepairBackoff), status keeps what it says.
		return outcome{waiting: true, requeueAfter: wait}
	}
	wrote, clash, err := r.applyTarget(ctx, h, desired)
	if err != nil {
		return outcome{err: err}
	}
	if clash {
		h.Status.TargetSecret = nil
		return announced(*injection.TargetClash(target.Namespace, target.Name))
	}
	h.Status.TargetSecret = &jetonv1alpha1.SecretReference{Namespace: target.Namespace, Name: target.Name}

	var out outcome
	if injection.Rotated(fp, prevFP, legacyFP) {
		// The Secret is written; the workloads using it restart before the new fingerprint
		// is recorded in status, so a crash in between redoes the (idempotent) restart.
		var restarted []string
		if h.Spec.RestartWorkloads == nil || *h.Spec.RestartWorkloads {
			var done bool
			if restarted, done, err = r.restarts.request(client.ObjectKeyFromObject(h), h.Spec.ClientRef.Name, target, fp); err != nil {
				return failed("restarting the workloads", err)
			}
			if !done {
				// Gathered with the other rotations of the client namespace: the restarts
				// wake this Habilitation when they are done.
				return outcome{waiting: true, requeueAfter: restartWait}
			}
		}
		out.tell(false, eventRotated, "Rotate", rotatedNote(h.Status.Delivery, delivery, fp, prevFP, target))
		if len(restarted) > 0 {
			metrics.WorkloadRestarted(h.Namespace, h.Name, h.Spec.ClientRef.Name, string(h.Spec.API), string(h.Spec.Environment), len(restarted))
			out.tell(false, eventRestarted, "Restart", fmt.Sprintf("Restarted %d workload(s) in namespace %s using Secret %s for the new token: %s.",
				len(restarted), target.Namespace, target.Name, injection.WorkloadList(restarted)))
		}
		now := metav1.NewTime(r.now())
		h.Status.LastRotationTime = &now
	} else if wrote && prevFP == fp && injection.IsInjected(conditions.ReadyReason(h.Status.Conditions)) {
		// Conditions still hold the previous pass: the Secret was there and is rewritten.
		out.tell(false, eventRestored, "Inject", fmt.Sprintf("Secret %s/%s was missing or differed from the desired content (edited or deleted by hand, or the spec or the client's SIRET changed); it has been rewritten.", target.Namespace, target.Name))
	}
	if delivery == jetonv1alpha1.DeliveryGateway && prevTokenFP != "" && prevTokenFP != tok.Fingerprint && h.Status.Delivery == delivery {
		out.tell(false, eventRotated, "Rotate", fmt.Sprintf("New token (fingerprint %s, was %s): the gateway sends it from now on; Secret %s/%s holds a gateway credential and is unchanged, no workload restarts.",
			tok.Fingerprint, prevTokenFP, target.Namespace, target.Name))
	}
	h.Status.Delivery, h.Status.DeliveredFingerprint = delivery, fp
	v, next := injection.Judge(r.now(), h)
	out.Verdict, out.announce = v, true
	if next > 0 {
		// Just past the threshold, so the next pass sees the new state.
		out.requeueAfter = min(next+time.Second, maxRequeue)
	}
	return out
}

// rotatedNote tells what a rotation of the delivered content (from delivery was to now)
// wrote into Secret target, by fingerprints only.
func rotatedNote(was, now jetonv1alpha1.Delivery, fp, prevFP string, target types.NamespacedName) string {
	switch {
	case now == jetonv1alpha1.DeliveryGateway && was != jetonv1alpha1.DeliveryGateway:
		return fmt.Sprintf("Gateway delivery: a gateway credential (fingerprint %s, was the token %s) and the gateway's BASE_URL written to Secret %s/%s; the token no longer reaches the client namespace.", fp, prevFP, target.Namespace, target.Name)
	case now == jetonv1alpha1.DeliveryGateway:
		return fmt.Sprintf("New gateway credential (fingerprint %s, was %s) written to Secret %s/%s; the previous one no longer works.", fp, prevFP, target.Namespace, target.Name)
	case was == jetonv1alpha1.DeliveryGateway:
		return fmt.Sprintf("Direct delivery: the token (fingerprint %s, was the gateway credential %s) and the API's BASE_URL written to Secret %s/%s.", fp, prevFP, target.Namespace, target.Name)
	}
	return fmt.Sprintf("New token (fingerprint %s, was %s) written to Secret %s/%s.", fp, prevFP, target.Namespace, target.Name)
}

// setFinalizer adds (want) or removes jeton's finalizer, and moves orig along.
func (r *HabilitationReconciler) setFinalizer(ctx context.Context, h *jetonv1alpha1.Habilitation, orig **jetonv1alpha1.Habilitation, want bool) error {
	if controllerutil.ContainsFinalizer(h, jetonv1alpha1.FinalizerCleanup) == want {
		return nil
	}
	if want {
		controllerutil.AddFinalizer(h, jetonv1alpha1.FinalizerCleanup)
	} else {
		controllerutil.RemoveFinalizer(h, jetonv1alpha1.FinalizerCleanup)
	}
	if err := r.Patch(ctx, h, client.MergeFrom(*orig)); err != nil {
		return err
	}
	*orig = h.DeepCopy()
	return nil
}

// warnTokenHolder tells the owners of the Habilitation holder, which keeps the token fp
// that h was refused, that their token was handed to another client: it may have leaked
// and need regenerating.
func (r *HabilitationReconciler) warnTokenHolder(ctx context.Context, h *jetonv1alpha1.Habilitation, holder injection.Binding, fp string) {
	winner := &jetonv1alpha1.Habilitation{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: holder.Namespace, Name: holder.Name}, winner); err == nil {
		record(r.Recorder, winner, pendingEvent{true, jetonv1alpha1.ReasonTokenConflict, "Arbitrate", fmt.Sprintf(
			"Habilitation %s/%s of client %q holds the same token (fingerprint %s) and was refused; this Habilitation keeps it. If the token was handed out by mistake, regenerate it.",
			h.Namespace, h.Name, h.Spec.ClientRef.Name, fp)})
	}
}

// readClient reads the Habilitation's client (nil when it does not exist) and says why jeton
// must not write into its namespace ("" when it may).
func (r *HabilitationReconciler) readClient(ctx context.Context, h *jetonv1alpha1.Habilitation) (*jetonv1alpha1.PublicClient, string, error) {
	c := &jetonv1alpha1.PublicClient{}
	if err := r.Get(ctx, types.NamespacedName{Name: h.Spec.ClientRef.Name}, c); err != nil {
		return nil, "", client.IgnoreNotFound(err)
	}
	problem, err := r.clientNamespaceProblem(ctx, c)
	return c, problem, err
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
