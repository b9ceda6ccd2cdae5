package cli

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Reference is one way a pod spec reads a Secret. It names keys, variables and paths,
// never values.
type Reference struct {
	// Container is the container that reads the Secret; empty for a volume no container mounts.
	Container string `json:"container,omitempty"`
	// Via is env, envFrom, volume or projected.
	Via string `json:"via"`
	// Detail says how: the variable and key, the prefix, the volume and its mount paths.
	Detail string `json:"detail"`
}

// SecretReferences lists how spec reads Secret name: env (secretKeyRef), envFrom, secret
// volumes and projected volumes, for containers, init containers and ephemeral containers,
// in a stable order. These are the references jeton restarts workloads for.
func SecretReferences(spec *corev1.PodSpec, name string) []Reference {
	var refs []Reference
	type container struct {
		name string
		env  []corev1.EnvVar
		from []corev1.EnvFromSource
		mnts []corev1.VolumeMount
	}
	var containers []container
	for _, c := range spec.InitContainers {
		containers = append(containers, container{c.Name, c.Env, c.EnvFrom, c.VolumeMounts})
	}
	for _, c := range spec.Containers {
		containers = append(containers, container{c.Name, c.Env, c.EnvFrom, c.VolumeMounts})
	}
	for _, c := range spec.EphemeralContainers {
		containers = append(containers, container{c.Name, c.Env, c.EnvFrom, c.VolumeMounts})
	}
	for _, c := range containers {
		for _, e := range c.from {
			if e.SecretRef != nil && e.SecretRef.Name == name {
				d := "all keys"
				if e.Prefix != "" {
					d = fmt.Sprintf("all keys, prefix %s", e.Prefix)
				}
				refs = append(refs, Reference{Container: c.name, Via: "envFrom", Detail: d})
			}
		}
		for _, e := range c.env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == name {
				refs = append(refs, Reference{Container: c.name, Via: "env", Detail: fmt.Sprintf("%s from key %s", e.Name, e.ValueFrom.SecretKeyRef.Key)})
			}
		}
	}
	for _, v := range spec.Volumes {
		via := ""
		switch {
		case v.Secret != nil && v.Secret.SecretName == name:
			via = "volume"
		case v.Projected != nil && slices.ContainsFunc(v.Projected.Sources, func(s corev1.VolumeProjection) bool {
			return s.Secret != nil && s.Secret.Name == name
		}):
			via = "projected"
		default:
			continue
		}
		mounted := false
		for _, c := range containers {
			var paths []string
			for _, m := range c.mnts {
				if m.Name == v.Name {
					paths = append(paths, m.MountPath)
				}
			}
			if len(paths) > 0 {
				mounted = true
				refs = append(refs, Reference{Container: c.name, Via: via, Detail: fmt.Sprintf("volume %s at %s", v.Name, strings.Join(paths, ", "))})
			}
		}
		if !mounted {
			refs = append(refs, Reference{Via: via, Detail: fmt.Sprintf("volume %s (mounted by no container)", v.Name)})
		}
	}
	slices.SortStableFunc(refs, func(a, b Reference) int {
		return cmp.Or(cmp.Compare(a.Container, b.Container), cmp.Compare(a.Via, b.Via), cmp.Compare(a.Detail, b.Detail))
	})
	return refs
}
