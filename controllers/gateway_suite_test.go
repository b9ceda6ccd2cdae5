package controllers

import (
	"context"
	"fmt"
	"os"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// testGatewayURL is the main test manager's --gateway-url.
const testGatewayURL = "http://jeton-gateway.jeton-system.svc:8080"

// The operator's flags are fixed for its life, and the package's tests share one manager
// whose default delivery is Direct with a gateway URL. The behaviours of other flags
// (--default-delivery=Gateway, no --gateway-url) are tested on a second Habilitation
// reconciler, run as the binary runs it but with those options, whose credentials
// namespace is gwDefaultNS. Neither manager sees the other's Habilitations or injected
// Secrets: each would take the other's for orphans and remove them.
const gwDefaultNS = "jeton-gw-default"

// defaultGatewayOptions are the second manager's: every Habilitation without
// spec.delivery goes through the gateway, and there is no --gateway-url (which the
// binary's flags refuse together, but spec.delivery: Gateway alone gets there too).
func defaultGatewayOptions() Options {
	o := testOptions
	o.CredentialsNamespaces = []string{gwDefaultNS}
	o.DefaultDelivery = jetonv1alpha1.DeliveryGateway
	o.GatewayURL = ""
	return o
}

// restrictCache narrows opts (CacheOptions) to the Habilitations habs selects and to the
// injected Secrets whose Habilitation namespace injected selects.
func restrictCache(opts cache.Options, habs cache.ByObject, injected labels.Requirement) cache.Options {
	opts.ByObject[&jetonv1alpha1.Habilitation{}] = habs
	for obj, by := range opts.ByObject {
		if _, ok := obj.(*corev1.Secret); ok {
			sel := by.Namespaces[cache.AllNamespaces].LabelSelector.Add(injected)
			by.Namespaces[cache.AllNamespaces] = cache.Config{LabelSelector: sel}
		}
	}
	return opts
}

// withoutSecondManagersObjects keeps the second manager's objects out of opts' cache.
func withoutSecondManagersObjects(opts cache.Options) cache.Options {
	other, err := labels.NewRequirement(jetonv1alpha1.LabelHabilitationNamespace, selection.NotEquals, []string{gwDefaultNS})
	if err != nil {
		panic(err)
	}
	return restrictCache(opts, cache.ByObject{Field: fields.OneTermNotEqualSelector("metadata.namespace", gwDefaultNS)}, *other)
}

// startDefaultGatewayManager runs the second Habilitation reconciler (see above).
func startDefaultGatewayManager(parent context.Context, logger logr.Logger) error {
	ctx, cancel := context.WithCancel(parent)
	opts := defaultGatewayOptions()
	own, err := labels.NewRequirement(jetonv1alpha1.LabelHabilitationNamespace, selection.Equals, []string{gwDefaultNS})
	if err != nil {
		cancel()
		return err
	}
	cacheOpts := restrictCache(CacheOptions(opts), cache.ByObject{Namespaces: map[string]cache.Config{gwDefaultNS: {}}}, *own)
	if err := k8sClient.Create(ctx, namespaceObject(gwDefaultNS)); err != nil {
		cancel()
		return err
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  env.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   cacheOpts,
		Logger:  logger,
		// The main manager's controllers have the same names.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		cancel()
		return err
	}
	if err := registerIndexes(ctx, mgr.GetFieldIndexer(), opts); err != nil {
		cancel()
		return err
	}
	key := &ownerKey{reader: mgr.GetAPIReader(), writer: mgr.GetClient(), namespace: opts.ownerKeyNamespace(), cache: mgr.GetClient()}
	if err := setupHabilitationReconciler(mgr, opts, key, newOwnWrites()); err != nil {
		cancel()
		return err
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "second manager stopped:", err)
			os.Exit(1)
		}
	}()
	env.Cleanup(func() { cancel(); <-stopped })
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return fmt.Errorf("the second manager's cache did not sync")
	}
	return nil
}
