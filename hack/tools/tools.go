//go:build tools

// Package tools pins the Kubernetes control-plane binaries that envtest, the fuller test
// cluster and the local run use. Their release downloads are out of reach, so
// hack/build-control-plane.sh builds them from these modules into bin/.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
