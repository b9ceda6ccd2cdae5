package controllers

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// cacheCatchUp is when a pass skipped for a stale cache copy runs again. The watch event of
// the write it waits for usually comes first; this covers the kinds whose predicates drop
// status-only events.
const cacheCatchUp = 250 * time.Millisecond

// ownWrites remembers the resourceVersion of this process's last write to each PublicClient,
// Habilitation and TechnicalToken, so that a pass reading an older copy from the cache is
// skipped instead of acted upon. A watch event (the namespace a pass just created, the
// Secret it just applied) often reaches the work queue before the cache holds the pass's
// own status write; acting on that stale copy would redo the status write (and, without the
// optimistic lock, its events). Skipping costs nothing: no read, no write.
//
// Resource versions are compared as the API server defines them (apimachinery's
// resourceversion.CompareResourceVersion); a version that does not parse is never stale.
type ownWrites struct {
	mu   sync.Mutex
	last map[types.UID]ownWrite
}

type ownWrite struct {
	resourceVersion string
	at              time.Time
}

// forgetAfter bounds the memory of an entry whose object is never seen again (deleted
// before the cache caught up): a cache that lags by this much is not lagging, it is broken.
const forgetAfter = time.Minute

func newOwnWrites() *ownWrites { return &ownWrites{last: map[types.UID]ownWrite{}} }

// record notes obj's resourceVersion after a write by this process.
func (w *ownWrites) record(obj client.Object) {
	switch obj.(type) {
	case *jetonv1alpha1.PublicClient, *jetonv1alpha1.Habilitation, *jetonv1alpha1.TechnicalToken:
	default:
		return
	}
	if w == nil || obj.GetUID() == "" || obj.GetResourceVersion() == "" {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last[obj.GetUID()] = ownWrite{resourceVersion: obj.GetResourceVersion(), at: now}
	if len(w.last)%1024 == 0 {
		for uid, e := range w.last {
			if now.Sub(e.at) > forgetAfter {
				delete(w.last, uid)
			}
		}
	}
}

// behind reports whether cached, as read from the cache, is older than this process's last
// write to it. Once the cache has caught up the entry is forgotten.
func (w *ownWrites) behind(cached client.Object) bool {
	if w == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	e, ok := w.last[cached.GetUID()]
	if !ok {
		return false
	}
	cmp, err := resourceversion.CompareResourceVersion(cached.GetResourceVersion(), e.resourceVersion)
	if err == nil && cmp < 0 && time.Since(e.at) < forgetAfter {
		return true
	}
	delete(w.last, cached.GetUID())
	return false
}

// recordingClient is the manager's client, noting every write to jeton's own kinds in
// ownWrites. Reads are the cache's, unchanged.
type recordingClient struct {
	client.Client
	writes *ownWrites
}

func (c recordingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	err := c.Client.Patch(ctx, obj, patch, opts...)
	if err == nil {
		c.writes.record(obj)
	}
	return err
}

func (c recordingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	err := c.Client.Update(ctx, obj, opts...)
	if err == nil {
		c.writes.record(obj)
	}
	return err
}

func (c recordingClient) Status() client.SubResourceWriter {
	return recordingStatusWriter{SubResourceWriter: c.Client.Status(), writes: c.writes}
}

type recordingStatusWriter struct {
	client.SubResourceWriter
	writes *ownWrites
}

func (w recordingStatusWriter) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	err := w.SubResourceWriter.Patch(ctx, obj, patch, opts...)
	if err == nil {
		w.writes.record(obj)
	}
	return err
}

func (w recordingStatusWriter) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	err := w.SubResourceWriter.Update(ctx, obj, opts...)
	if err == nil {
		w.writes.record(obj)
	}
	return err
}
