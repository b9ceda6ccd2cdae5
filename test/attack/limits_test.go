package attack

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/injection"
	"github.com/jeton-dev/jeton/internal/testenv"
	"github.com/jeton-dev/jeton/internal/token"
)

const (
	// heavyWorkloads of heavyWorkloadSize each: more than 80 MiB of a tenant's workloads,
	// every one using the injected Secret (replicas 0 costs the tenant nothing).
	heavyWorkloads    = 64
	heavyWorkloadSize = 1300 << 10
	// rotationGrowthLimit is the most the manager's peak memory may grow by during the
	// rotation that restarts them: a few tens of MiB, whatever they weigh.
	rotationGrowthLimit = 64 << 20
)

// Issue 21, point 3. A tenant fills its namespace with heavy Deployments using its
// injected Secret, so that the restart at the next rotation, which lists them, makes the
// manager exceed its memory limit (a crash loop for every client). jeton lists them a few
// at a time and keeps only what a restart needs: the manager's peak resident memory grows
// by a few tens of MiB, every Deployment is restarted once, and the manager lives on.
func TestHeavyWorkloadsDoNotGrowMemoryAtRotation(t *testing.T) {
	ctx := context.Background()
	sfx := suffix()
	clientW := "heavy-" + sfx
	habName := "heavy-" + sfx
	readyClient(t, clientW)
	tenant := tenantClient(t, clientW)
	tok, _ := mint(t, jetonv1alpha1.APIEntreprise)
	h := injectedHabilitation(t, habName, clientW, tok, jetonv1alpha1.APIEntreprise)

	// The tenant's Deployments: random data in environment variables, so that nothing
	// along the way can share or compress it.
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, heavyWorkloads)
	work := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range work {
				d := testenv.Workload(clientW, fmt.Sprintf("heavy-%03d", i), habName)
				d.Spec.Replicas = new(int32)
				d.Spec.Template.Spec.Containers[0].Env = heavyEnv(t, heavyWorkloadSize)
				if err := tenant.Create(ctx, d); err != nil {
					errs <- fmt.Errorf("Deployment %s: %w", d.Name, err)
				}
			}
		})
	}
	for i := range heavyWorkloads {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("creating the tenant's Deployments: %v", err)
	}
	t.Cleanup(func() {
		_ = env.Client.DeleteAllOf(context.Background(), &appsv1.Deployment{}, client.InNamespace(clientW))
	})
	t.Logf("%d Deployments of %d KiB (%.1f MiB) created in %s", heavyWorkloads, heavyWorkloadSize>>10,
		float64(heavyWorkloads*heavyWorkloadSize)/(1<<20), time.Since(start).Round(time.Second))
	habilitationsQuiet(t)

	// The peak resident memory (VmHWM) is reset to the current one, so that what follows
	// is the rotation's own peak.
	pid := op.Cmd.Process.Pid
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		t.Fatalf("resetting the operator's peak resident memory: %v", err)
	}
	rssBefore := procStatus(t, pid, "VmRSS")
	heapBefore, _ := heap(t)

	// The rotation.
	rotatedAt := time.Now()
	newTok, _ := mint(t, jetonv1alpha1.APIEntreprise)
	registerToken("client "+clientW+"'s rotated token", false, newTok, credNS+"/"+h.Spec.TokenSecretRef.Name, clientW+"/"+habName)
	src := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: h.Spec.TokenSecretRef.Name}, Data: map[string][]byte{"token": []byte(newTok)}}
	if err := env.Client.Update(ctx, src); err != nil {
		t.Fatal(err)
	}
	newFP := token.Fingerprint(newTok)
	// The Habilitation records the new fingerprint once the restarts are done.
	waitFor(t, 2*waitTimeout, "the rotation recorded (every restart done)", func(ctx context.Context) error {
		got := &jetonv1alpha1.Habilitation{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(h), got); err != nil {
			return err
		}
		if got.Status.TokenFingerprint != newFP {
			return fmt.Errorf("status.tokenFingerprint %s", got.Status.TokenFingerprint)
		}
		return nil
	})
	took := time.Since(rotatedAt)
	peak := procStatus(t, pid, "VmHWM")
	heapAfter, _ := heap(t)
	growth := peak - rssBefore
	t.Logf("rotation restarting %d Deployments (%.1f MiB) done in %s: peak resident memory %.1f MiB, %.1f MiB above the %.1f MiB before (heap in use %.1f → %.1f MiB)",
		heavyWorkloads, float64(heavyWorkloads*heavyWorkloadSize)/(1<<20), took.Round(100*time.Millisecond),
		float64(peak)/(1<<20), float64(growth)/(1<<20), float64(rssBefore)/(1<<20), heapBefore/(1<<20), heapAfter/(1<<20))
	if growth > rotationGrowthLimit {
		t.Errorf("the operator's peak resident memory grew by %.1f MiB during the rotation, want at most %d MiB", float64(growth)/(1<<20), rotationGrowthLimit>>20)
	}

	// Every Deployment restarted, once (metadata only: the test does not hold them either).
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("DeploymentList"))
	if err := env.Client.List(ctx, list, client.InNamespace(clientW)); err != nil {
		t.Fatal(err)
	}
	generations := map[int64]int{}
	for _, d := range list.Items {
		generations[d.Generation]++
	}
	if !maps.Equal(generations, map[int64]int{2: heavyWorkloads}) {
		t.Errorf("Deployments by generation %v, want all %d at 2 (restarted once)", generations, heavyWorkloads)
	}
	one := &appsv1.Deployment{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: clientW, Name: "heavy-000"}, one); err != nil {
		t.Fatal(err)
	}
	if got, want := one.Spec.Template.Annotations[jetonv1alpha1.AnnotationRestartedFor], injection.RestartedFor("", habName, newFP); got != want {
		t.Errorf("%s=%q, want %q", jetonv1alpha1.AnnotationRestartedFor, got, want)
	}
	note := ""
	waitFor(t, waitTimeout, "the Restarted event", func(ctx context.Context) error {
		_, events, err := eventReasons(ctx, "Habilitation", credNS, habName)
		if err != nil {
			return err
		}
		for _, e := range events {
			if e.Reason == "Restarted" {
				note = e.Note
				return nil
			}
		}
		return fmt.Errorf("no Restarted event yet")
	})
	if !strings.Contains(note, fmt.Sprintf("Restarted %d workload(s)", heavyWorkloads)) {
		t.Errorf("Restarted event %q, want it to count %d workloads", note, heavyWorkloads)
	}
	if !op.Running() {
		t.Fatalf("the operator exited: %v", op.ExitErr())
	}
	checkGlobal(t)
}

// heavyEnv is environment variables of random values, size bytes in all.
func heavyEnv(t *testing.T, size int) []corev1.EnvVar {
	const chunk = 64 << 10
	var env []corev1.EnvVar
	raw := make([]byte, chunk*3/4)
	for i := 0; i*chunk < size; i++ {
		if _, err := rand.Read(raw); err != nil {
			t.Error(err)
		}
		env = append(env, corev1.EnvVar{Name: fmt.Sprintf("PADDING_%02d", i), Value: base64.StdEncoding.EncodeToString(raw)})
	}
	return env
}

// procStatus reads a memory figure of /proc/<pid>/status, in bytes.
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", field, err)
		}
		return kb << 10
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// Issue 21, point 4. An editor of PublicClients asks for the privileged Pod Security level,
// which would let the tenant run privileged pods (hostPath, the node's other clients'
// tokens): a cluster admin's power. Under the default floor (baseline) jeton refuses it,
// Stalled with PodSecurityBelowFloor and an event, and the namespace keeps its labels; the
// client's tokens stay injected. A new client asking for it gets no namespace at all.
func TestEditorCannotMakeNamespacePrivileged(t *testing.T) {
	ctx := context.Background()
	sfx := suffix()
	clientP := "psa-" + sfx
	pc := readyClient(t, clientP)
	tok, _ := mint(t, jetonv1alpha1.APIEntreprise)
	h := injectedHabilitation(t, "psa-"+sfx, clientP, tok, jetonv1alpha1.APIEntreprise)
	injected := waitInjected(t, clientP, h.Name, tok)
	nsBefore := &corev1.Namespace{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: clientP}, nsBefore); err != nil {
		t.Fatal(err)
	}
	if got := nsBefore.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Fatalf("namespace %s enforces %q before the edit, want restricted", clientP, got)
	}

	// The editor's change.
	got := &jetonv1alpha1.PublicClient{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pc), got); err != nil {
		t.Fatal(err)
	}
	got.Spec.Isolation.PodSecurity = jetonv1alpha1.PodSecurityPrivileged
	if err := env.Client.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	stalled := waitReady(t, pc, metav1.ConditionFalse, jetonv1alpha1.ReasonPodSecurityBelowFloor, true).(*jetonv1alpha1.PublicClient)
	msg := conditionMessage(stalled.Status.Conditions)
	for _, want := range []string{"privileged is below the operator's floor baseline", "--pod-security-floor"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Ready message %q does not say %q", msg, want)
		}
	}
	waitFor(t, waitTimeout, "a PodSecurityBelowFloor event", func(ctx context.Context) error {
		reasons, _, err := eventReasons(ctx, "PublicClient", "", clientP)
		if err != nil {
			return err
		}
		for _, r := range reasons {
			if r == jetonv1alpha1.ReasonPodSecurityBelowFloor {
				return nil
			}
		}
		return fmt.Errorf("events %v", reasons)
	})
	habilitationsQuiet(t)
	nsAfter := &corev1.Namespace{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: clientP}, nsAfter); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(nsBefore.Labels, nsAfter.Labels) {
		t.Errorf("namespace %s labels changed by a refused edit: %v, were %v", clientP, nsAfter.Labels, nsBefore.Labels)
	}
	clientStillServed(t, h, tok, injected)

	// A new client asking for privileged from the start: no namespace is created.
	clientN := "psa-new-" + sfx
	pcN := newClient(t, clientN, func(pc *jetonv1alpha1.PublicClient) {
		pc.Spec.Isolation.PodSecurity = jetonv1alpha1.PodSecurityPrivileged
	})
	waitReady(t, pcN, metav1.ConditionFalse, jetonv1alpha1.ReasonPodSecurityBelowFloor, true)
	if err := env.Client.Get(ctx, client.ObjectKey{Name: clientN}, &corev1.Namespace{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace %s of a client refused for privileged: %v, want NotFound", clientN, err)
	}
	checkGlobal(t)
}

func conditionMessage(conds []metav1.Condition) string {
	for _, c := range conds {
		if c.Type == jetonv1alpha1.ConditionReady {
			return c.Message
		}
	}
	return ""
}
