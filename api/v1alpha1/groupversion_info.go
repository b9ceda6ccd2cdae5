// Package v1alpha1 contains the jeton.dev/v1alpha1 API: PublicClient, Habilitation and
// TechnicalToken. No resource of this group ever holds a token: tokens live in Secrets
// and resources reference them, so every object here is safe to keep in Git.
// +kubebuilder:object:generate=true
// +groupName=jeton.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "jeton.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this API with a runtime.Scheme.
	//lint:ignore SA1019 the kubebuilder scaffold's builder; the api package already depends on controller-runtime for it.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this API to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
