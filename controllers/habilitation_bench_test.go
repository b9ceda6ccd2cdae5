package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/testenv"
	"github.com/jeton-dev/jeton/internal/token"
)

// BenchmarkHabilitationRotation measures how long a token rotation takes end to end: from
// the update of the source Secret to the new token in the client namespace and the restart
// annotation on a Deployment using it (DESIGN: "within seconds"). ns/op is that latency.
//
//	go test ./controllers -run '^$' -bench HabilitationRotation -benchtime 20x
func BenchmarkHabilitationRotation(b *testing.B) {
	ctx := context.Background()
	pc := &jetonv1alpha1.PublicClient{
		ObjectMeta: metav1.ObjectMeta{Name: uniqueName("bench")},
		Spec:       jetonv1alpha1.PublicClientSpec{DisplayName: "Bench", SIRET: validSIRET},
	}
	src := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: uniqueName("bench-token")},
		Data:       tokenData(issueJWT(b, time.Now().Add(365*24*time.Hour))),
	}
	h := &jetonv1alpha1.Habilitation{
		ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: uniqueName("bench")},
		Spec: jetonv1alpha1.HabilitationSpec{
			ClientRef:      jetonv1alpha1.ClientReference{Name: pc.Name},
			API:            jetonv1alpha1.APIEntreprise,
			TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: src.Name, Key: "token"},
		},
	}
	for _, o := range []client.Object{pc, src, h} {
		if err := k8sClient.Create(ctx, o); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = k8sClient.Delete(context.Background(), o) })
	}
	testenv.WaitFor(b, 30*time.Second, "Habilitation injected", func(ctx context.Context) error {
		got := &jetonv1alpha1.Habilitation{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(h), got); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady); c == nil || c.Reason != jetonv1alpha1.ReasonInjected {
			return fmt.Errorf("not injected yet: %v", c)
		}
		return nil
	})
	d := deployment(pc.TargetNamespace(), "bench-app", corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app",
		EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: h.Name}}}}}}})
	if err := k8sClient.Create(ctx, d); err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		tok := issueJWT(b, time.Now().Add(365*24*time.Hour))
		want := h.Name + "=" + token.Fingerprint(tok)
		src.Data = tokenData(tok)
		b.StartTimer()
		if err := k8sClient.Update(ctx, src); err != nil {
			b.Fatal(err)
		}
		testenv.WaitFor(b, 30*time.Second, "rotation", func(ctx context.Context) error {
			s := &corev1.Secret{}
			if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: pc.TargetNamespace(), Name: h.Name}, s); err != nil {
				return err
			}
			if string(s.Data["TOKEN"]) != tok {
				return fmt.Errorf("target not updated yet")
			}
			got := &appsv1.Deployment{}
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(d), got); err != nil {
				return err
			}
			if got.Spec.Template.Annotations[jetonv1alpha1.AnnotationRestartedFor] != want {
				return fmt.Errorf("deployment not restarted yet")
			}
			return nil
		})
	}
}
