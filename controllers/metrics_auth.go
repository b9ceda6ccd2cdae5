package controllers

// The manager serves /metrics over HTTPS to authenticated and authorized callers only
// (cmd/main.go, --metrics-secure, the default): it checks each caller's bearer token with a
// TokenReview and its right to GET /metrics with a SubjectAccessReview. Prometheus's
// identity needs the metrics-reader ClusterRole (config/rbac/metrics_reader_role.yaml).

// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
