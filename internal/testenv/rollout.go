package testenv

import (
	"context"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// RevisionAnnotation is where the Deployment controller counts a Deployment's rollouts: 1
// for its first ReplicaSet, one more for each new pod template it rolls out.
const RevisionAnnotation = "deployment.kubernetes.io/revision"

// RolledOut returns the Deployment's revision once its latest rollout is complete, on a
// cluster started WithCluster: the Deployment controller has seen the current spec, every
// replica is updated and available, and the pods are exactly spec.replicas Running pods
// of the current ReplicaSet (those of older ReplicaSets are gone, not just terminating).
// Otherwise it returns an error saying what is missing, for Poll.
func RolledOut(ctx context.Context, c client.Reader, key client.ObjectKey) (int, error) {
	d := &appsv1.Deployment{}
	if err := c.Get(ctx, key, d); err != nil {
		return 0, err
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	if st.ObservedGeneration != d.Generation {
		return 0, fmt.Errorf("deployment %s: generation %d not observed yet", key, d.Generation)
	}
	if st.Replicas != want || st.UpdatedReplicas != want || st.AvailableReplicas != want {
		return 0, fmt.Errorf("deployment %s: %d replicas, %d updated, %d available, want %d", key, st.Replicas, st.UpdatedReplicas, st.AvailableReplicas, want)
	}
	revision, err := strconv.Atoi(d.Annotations[RevisionAnnotation])
	if err != nil {
		return 0, fmt.Errorf("deployment %s: annotation %s: %v", key, RevisionAnnotation, err)
	}

	rss := &appsv1.ReplicaSetList{}
	if err := c.List(ctx, rss, client.InNamespace(key.Namespace), client.MatchingLabels(d.Spec.Selector.MatchLabels)); err != nil {
		return 0, err
	}
	hash := ""
	for _, rs := range rss.Items {
		if metav1.IsControlledBy(&rs, d) && rs.Annotations[RevisionAnnotation] == d.Annotations[RevisionAnnotation] {
			hash = rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
		}
	}
	if hash == "" {
		return 0, fmt.Errorf("deployment %s: no ReplicaSet of revision %d", key, revision)
	}
	pods := &corev1.PodList{}
	if err := c.List(ctx, pods, client.InNamespace(key.Namespace), client.MatchingLabels(d.Spec.Selector.MatchLabels)); err != nil {
		return 0, err
	}
	running := int32(0)
	for _, p := range pods.Items {
		switch {
		case p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != hash:
			return 0, fmt.Errorf("deployment %s: pod %s of an older ReplicaSet is still there (%s)", key, p.Name, p.Status.Phase)
		case p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning:
			return 0, fmt.Errorf("deployment %s: pod %s is %s", key, p.Name, p.Status.Phase)
		}
		running++
	}
	if running != want {
		return 0, fmt.Errorf("deployment %s: %d pods Running, want %d", key, running, want)
	}
	return revision, nil
}
