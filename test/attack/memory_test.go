package attack

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

const (
	lookalikes    = 100
	lookalikeSize = 900 << 10
)

// Finding 6. Someone who can create Secrets in a namespace that is not a client namespace
// creates many large Secrets labelled as jeton's own, naming a real client and Habilitation,
// to grow jeton's memory by their data (its cache watches every Secret labelled
// managed-by=jeton) and to have jeton touch them. jeton's heap grows by far less than their
// data, and none of them is touched when the Habilitation they name, then its client, are
// deleted.
func TestLookalikeSecretsDoNotGrowMemory(t *testing.T) {
	ctx := context.Background()
	sfx := suffix()
	clientM := "mem-" + sfx
	readyClient(t, clientM)
	tok, _ := mint(t, jetonv1alpha1.APIEntreprise)
	hM := injectedHabilitation(t, "mem-"+sfx, clientM, tok, jetonv1alpha1.APIEntreprise)
	plain := "mem-plain-" + sfx
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: plain}}); err != nil {
		t.Fatal(err)
	}

	heapBefore, allocBefore := heap(t)
	addsBefore, _, err := op.Metric("workqueue_adds_total", `name="habilitation"`)
	if err != nil {
		t.Fatal(err)
	}

	// The look-alikes: random data, so nothing along the way can share or shrink it.
	data := make([]byte, lookalikeSize)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	lookalikeLabels := map[string]string{
		jetonv1alpha1.LabelManagedBy:             jetonv1alpha1.ManagedByValue,
		jetonv1alpha1.LabelClient:                clientM,
		jetonv1alpha1.LabelHabilitation:          hM.Name,
		jetonv1alpha1.LabelHabilitationNamespace: credNS,
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := map[string]string{} // name → resourceVersion at creation
	errs := make(chan error, lookalikes)
	work := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range work {
				d := make([]byte, len(data))
				copy(d, data)
				d[0], d[1] = byte(i), byte(i>>8)
				s := &corev1.Secret{
					ObjectMeta: metav1.ObjectMeta{Namespace: plain, Name: fmt.Sprintf("lookalike-%03d", i), Labels: lookalikeLabels,
						Annotations: map[string]string{jetonv1alpha1.AnnotationTokenFingerprint: "0123456789abcdef"}},
					Data: map[string][]byte{"TOKEN": d},
				}
				if err := env.Client.Create(ctx, s); err != nil {
					errs <- err
					continue
				}
				mu.Lock()
				created[s.Name] = s.ResourceVersion
				mu.Unlock()
			}
		})
	}
	for i := range lookalikes {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("creating a look-alike Secret: %v", err)
	}

	// The look-alikes reached jeton's Habilitation queue (mapped to the Habilitation they
	// name; the drift sentinel below adds to the queue too, so this is counted before it).
	waitFor(t, waitTimeout, "the habilitation work queue to count the look-alikes", func(context.Context) error {
		adds, _, err := op.Metric("workqueue_adds_total", `name="habilitation"`)
		if err != nil {
			return err
		}
		if adds < addsBefore+1 {
			return fmt.Errorf("workqueue_adds_total{name=habilitation} %v, was %v", adds, addsBefore)
		}
		return nil
	})
	addsAfter, _, _ := op.Metric("workqueue_adds_total", `name="habilitation"`)
	t.Logf("workqueue_adds_total{name=\"habilitation\"} grew by %v for %d look-alikes (the queue coalesces adds of a key already queued)", addsAfter-addsBefore, lookalikes)
	// Proof that the operator's watch delivered all of them (see operatorHasSeen): drift on
	// the real injected Secret of the Habilitation they name, made after them, is restored.
	operatorHasSeen(t, hM, tok)
	habilitationsQuiet(t)

	heapAfter, allocAfter := heap(t)
	total := float64(lookalikes * lookalikeSize)
	growth := heapAfter - heapBefore
	t.Logf("heap in use %.1f MiB → %.1f MiB (allocated %.1f → %.1f MiB) for %.1f MiB of look-alike data",
		heapBefore/(1<<20), heapAfter/(1<<20), allocBefore/(1<<20), allocAfter/(1<<20), total/(1<<20))
	if growth > total/3 {
		t.Errorf("the operator's heap in use grew by %.1f MiB for %d look-alike Secrets holding %.1f MiB: it keeps their data (limit %.1f MiB)",
			growth/(1<<20), lookalikes, total/(1<<20), total/3/(1<<20))
	}

	// None of them was touched so far (the drift of the Habilitation they name was
	// repaired meanwhile), nor is when the Habilitation goes, then its client.
	before := lookalikeVersions(t, plain)
	if !maps.Equal(created, before) {
		t.Errorf("look-alike Secrets were touched before any deletion: %s", diffVersions(created, before))
	}
	if len(before) != lookalikes {
		t.Fatalf("%d look-alikes, want %d", len(before), lookalikes)
	}
	disallow(tok, clientM+"/"+hM.Name)
	deleteAndWait(t, hM)
	waitSecretGone(t, clientM, hM.Name)
	if after := lookalikeVersions(t, plain); !maps.Equal(before, after) {
		t.Errorf("look-alike Secrets were touched when Habilitation %s was deleted: %s", hM.Name, diffVersions(before, after))
	}
	pc := &jetonv1alpha1.PublicClient{ObjectMeta: metav1.ObjectMeta{Name: clientM}}
	deleteAndWait(t, pc)
	if after := lookalikeVersions(t, plain); !maps.Equal(before, after) {
		t.Errorf("look-alike Secrets were touched when PublicClient %s was deleted: %s", clientM, diffVersions(before, after))
	}

	// Let the rest of the package run without them.
	if err := env.Client.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(plain)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitTimeout, "the look-alikes to be deleted", func(ctx context.Context) error {
		if n := len(lookalikeVersions(t, plain)); n > 0 {
			return fmt.Errorf("%d left", n)
		}
		return nil
	})
	checkGlobal(t)
}

// heap forces a garbage collection in the operator and returns its heap in use and
// allocated, in bytes.
func heap(t *testing.T) (inuse, alloc float64) {
	t.Helper()
	if err := op.forceGC(); err != nil {
		t.Fatal(err)
	}
	inuse, found, err := op.Metric("go_memstats_heap_inuse_bytes")
	if err != nil || !found {
		t.Fatalf("go_memstats_heap_inuse_bytes: found %v, %v", found, err)
	}
	alloc, found, err = op.Metric("go_memstats_heap_alloc_bytes")
	if err != nil || !found {
		t.Fatalf("go_memstats_heap_alloc_bytes: found %v, %v", found, err)
	}
	return inuse, alloc
}

// lookalikeVersions maps each Secret of ns to its resourceVersion (metadata only).
func lookalikeVersions(t *testing.T, ns string) map[string]string {
	t.Helper()
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
	if err := env.Client.List(context.Background(), list, client.InNamespace(ns)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range list.Items {
		out[s.Name] = s.ResourceVersion
	}
	return out
}

func diffVersions(before, after map[string]string) error {
	var errs []error
	for name, rv := range before {
		switch got, ok := after[name]; {
		case !ok:
			errs = append(errs, fmt.Errorf("%s deleted", name))
		case got != rv:
			errs = append(errs, fmt.Errorf("%s rewritten", name))
		}
		if len(errs) >= 5 {
			errs = append(errs, errors.New("…"))
			break
		}
	}
	return errors.Join(errs...)
}
