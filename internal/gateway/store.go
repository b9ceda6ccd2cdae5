package gateway

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/publicapi"
)

// Store is the gateway's view of the Habilitations it serves: one Entry per Habilitation
// UID, rebuilt (BuildEntry) from the watched cache whenever the Habilitation, its token
// Secret, its PublicClient or the credential key changes. Requests only read it.
type Store struct {
	reader    client.Reader
	policy    publicapi.HostPolicy
	keySecret types.NamespacedName

	// rebuilding serialises rebuilds: the informers of Habilitations, Secrets and
	// PublicClients call the store from their own goroutines, and a rebuild that read the
	// cache before another must not write after it (a stale Ready entry over the
	// revocation that followed it would be served until the Habilitation's next event).
	// Reads of the cache are from memory, so holding it for a whole rebuild is cheap.
	rebuilding sync.Mutex
	// live is set by Resync: until then the informers' events (the initial listing, one per
	// object) are skipped, and Resync builds each entry once from the synced cache, instead
	// of each Habilitation being rebuilt for itself, its Secret and its PublicClient.
	live atomic.Bool

	mu      sync.RWMutex
	entries map[string]*Entry // by Habilitation UID
	uids    map[types.NamespacedName]string
	// secretOf is the token Secret of each Habilitation UID.
	secretOf map[string]types.NamespacedName
	// bySecret and byClient say which Habilitations to rebuild when a Secret or a
	// PublicClient changes.
	bySecret map[types.NamespacedName]map[string]bool
	byClient map[string]map[string]bool
	key      []byte
}

// NewStore returns a store reading from reader (the informer cache). keyNamespace is the
// namespace of the credential key Secret (the first credentials namespace).
func NewStore(reader client.Reader, policy publicapi.HostPolicy, keyNamespace string) *Store {
	return &Store{
		reader: reader, policy: policy,
		keySecret: types.NamespacedName{Namespace: keyNamespace, Name: CredentialKeySecretName},
		entries:   map[string]*Entry{}, uids: map[types.NamespacedName]string{}, secretOf: map[string]types.NamespacedName{},
		bySecret: map[types.NamespacedName]map[string]bool{}, byClient: map[string]map[string]bool{},
	}
}

// Lookup returns the entry of the Habilitation whose UID is uid and the credential key in
// force, or nil.
func (s *Store) Lookup(uid string) (*Entry, []byte) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.entries[uid], s.key
}

// Len is the number of Habilitations known.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.entries)
}

// Watch registers the store's handlers on c's informers. Call before c starts.
func (s *Store) Watch(ctx context.Context, c cache.Cache) error {
	kinds := []struct {
		obj     client.Object
		changed func(context.Context, client.Object)
	}{
		{&jetonv1alpha1.Habilitation{}, s.habilitationChanged},
		{&corev1.Secret{}, s.secretChanged},
		{&jetonv1alpha1.PublicClient{}, s.clientChanged},
	}
	for _, k := range kinds {
		inf, err := c.GetInformer(ctx, k.obj)
		if err != nil {
			return fmt.Errorf("watching %T: %w", k.obj, err)
		}
		changed := k.changed
		handle := func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if o, ok := obj.(client.Object); ok && s.live.Load() {
				changed(ctx, o)
			}
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    handle,
			UpdateFunc: func(_, obj any) { handle(obj) },
			DeleteFunc: handle,
		}); err != nil {
			return err
		}
	}
	return nil
}

// Resync rebuilds every entry from the cache, once the caches have synced; events are
// handled from then on.
func (s *Store) Resync(ctx context.Context) error {
	// Live first: an event from now on is handled (the cache already holds what it says,
	// so whatever came before is read by the rebuilds below).
	s.live.Store(true)
	s.reloadKey(ctx)
	var list jetonv1alpha1.HabilitationList
	if err := s.reader.List(ctx, &list); err != nil {
		return err
	}
	for i := range list.Items {
		s.rebuild(ctx, client.ObjectKeyFromObject(&list.Items[i]))
	}
	return nil
}

func (s *Store) habilitationChanged(ctx context.Context, o client.Object) {
	s.rebuild(ctx, client.ObjectKeyFromObject(o))
}

func (s *Store) secretChanged(ctx context.Context, o client.Object) {
	key := client.ObjectKeyFromObject(o)
	if key == s.keySecret {
		s.reloadKey(ctx)
		return
	}
	s.rebuildAll(ctx, s.dependents(s.bySecret[key]))
}

func (s *Store) clientChanged(ctx context.Context, o client.Object) {
	s.rebuildAll(ctx, s.dependents(s.byClient[o.GetName()]))
}

// dependents copies a set of UIDs into the keys of their Habilitations.
func (s *Store) dependents(uids map[string]bool) []types.NamespacedName {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var keys []types.NamespacedName
	for uid := range uids {
		if e := s.entries[uid]; e != nil {
			keys = append(keys, types.NamespacedName{Namespace: e.Namespace, Name: e.Name})
		}
	}
	return keys
}

func (s *Store) rebuildAll(ctx context.Context, keys []types.NamespacedName) {
	for _, k := range keys {
		s.rebuild(ctx, k)
	}
}

// reloadKey reads the credential key. A missing or empty key verifies no credential (the
// manager creates it; until then every request is refused as unidentified).
func (s *Store) reloadKey(ctx context.Context) {
	// Serialised with the rebuilds: Resync (at start) and the Secret informer both reload
	// the key; an older read written last would bring a replaced key back.
	s.rebuilding.Lock()
	defer s.rebuilding.Unlock()
	var sec corev1.Secret
	var key []byte
	if err := s.reader.Get(ctx, s.keySecret, &sec); err == nil {
		key = sec.Data[CredentialKeyDataKey]
	}
	s.mu.Lock()
	s.key = key
	s.mu.Unlock()
}

// rebuild recomputes the entry of the Habilitation at key from the cache.
func (s *Store) rebuild(ctx context.Context, key types.NamespacedName) {
	s.rebuilding.Lock()
	defer s.rebuilding.Unlock()
	var h jetonv1alpha1.Habilitation
	err := s.reader.Get(ctx, key, &h)
	if apierrors.IsNotFound(err) {
		s.remove(key)
		return
	}
	if err != nil {
		return // the cache answers from memory; nothing to retry against
	}
	secretKey := types.NamespacedName{Namespace: h.Namespace, Name: h.Spec.TokenSecretRef.Name}
	var src *corev1.Secret
	if sec := (&corev1.Secret{}); s.reader.Get(ctx, secretKey, sec) == nil {
		src = sec
	}
	var c *jetonv1alpha1.PublicClient
	if pc := (&jetonv1alpha1.PublicClient{}); s.reader.Get(ctx, types.NamespacedName{Name: h.Spec.ClientRef.Name}, pc) == nil {
		c = pc
	}
	uid := string(h.UID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.uids[key]; ok && old != uid {
		s.removeLocked(key) // deleted and recreated: the old UID's credentials die with it
	}
	s.entries[uid] = BuildEntry(&h, src, c, s.policy, s.entries[uid])
	s.uids[key] = uid
	s.secretOf[uid] = secretKey
	addTo(s.bySecret, secretKey, uid)
	addTo(s.byClient, h.Spec.ClientRef.Name, uid)
}

func (s *Store) remove(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(key)
}

func (s *Store) removeLocked(key types.NamespacedName) {
	uid, ok := s.uids[key]
	if !ok {
		return
	}
	if e := s.entries[uid]; e != nil {
		deleteFrom(s.byClient, e.Client, uid)
	}
	deleteFrom(s.bySecret, s.secretOf[uid], uid)
	delete(s.secretOf, uid)
	delete(s.entries, uid)
	delete(s.uids, key)
}

func addTo[K comparable](m map[K]map[string]bool, k K, uid string) {
	if m[k] == nil {
		m[k] = map[string]bool{}
	}
	m[k][uid] = true
}

func deleteFrom[K comparable](m map[K]map[string]bool, k K, uid string) {
	if set := m[k]; set != nil {
		delete(set, uid)
		if len(set) == 0 {
			delete(m, k)
		}
	}
}

// Hosts returns the canonical API hosts of the entries served (for the budget gauge).
func (s *Store) Hosts() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	seen := map[string]bool{}
	var hosts []string
	for _, e := range s.entries {
		if e.Host != "" && !seen[e.Host] {
			seen[e.Host] = true
			hosts = append(hosts, e.Host)
		}
	}
	return hosts
}
