package packaging

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

const chartDir = "dist/chart"

// objects is a rendered set of manifests, by "Kind/namespace/name".
type objects map[string]*unstructured.Unstructured

func key(kind, namespace, name string) string { return kind + "/" + namespace + "/" + name }

// parseManifests splits a multi-document YAML stream into objects.
func parseManifests(t *testing.T, manifests string) objects {
	t.Helper()
	objs := objects{}
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifests), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("parsing manifests: %v", err)
		}
		if len(u.Object) == 0 {
			continue
		}
		k := key(u.GetKind(), u.GetNamespace(), u.GetName())
		if _, dup := objs[k]; dup {
			t.Fatalf("%s rendered twice", k)
		}
		objs[k] = u
	}
	return objs
}

// get returns the object, failing the test when it was not rendered.
func (o objects) get(t *testing.T, kind, namespace, name string) *unstructured.Unstructured {
	t.Helper()
	u, ok := o[key(kind, namespace, name)]
	if !ok {
		t.Fatalf("%s %s/%s not rendered; rendered: %s", kind, namespace, name, strings.Join(o.keys(), ", "))
	}
	return u
}

func (o objects) keys() []string {
	ks := make([]string, 0, len(o))
	for k := range o {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (o objects) ofKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, k := range o.keys() {
		if o[k].GetKind() == kind {
			out = append(out, o[k])
		}
	}
	return out
}

// helmTemplate renders the chart as release in namespace with the values files and --set flags.
func helmTemplate(t *testing.T, release, namespace string, args ...string) (string, error) {
	t.Helper()
	r, err := runCmd(t, nil, nil, helmBin(t), append([]string{"template", release, chartDir, "--namespace", namespace}, args...)...)
	return r.stdout, err
}

func mustTemplate(t *testing.T, release, namespace string, args ...string) objects {
	t.Helper()
	out, err := helmTemplate(t, release, namespace, args...)
	if err != nil {
		t.Fatal(err)
	}
	return parseManifests(t, out)
}

// kustomize builds a kustomization directory of the repository with bin/kustomize.
func kustomize(t *testing.T, dir string) objects {
	t.Helper()
	r := must(t, nil, nil, tool(t, "kustomize", "tools"), "build", dir)
	return parseManifests(t, r.stdout)
}

// nested returns the value at path in u, failing when absent.
func nested(t *testing.T, u *unstructured.Unstructured, path ...string) any {
	t.Helper()
	v, ok, err := unstructured.NestedFieldNoCopy(u.Object, path...)
	if err != nil || !ok {
		t.Fatalf("%s %s: no field %s (%v)", u.GetKind(), u.GetName(), strings.Join(path, "."), err)
	}
	return v
}

// container returns the Deployment's manager container.
func container(t *testing.T, d *unstructured.Unstructured) map[string]any {
	t.Helper()
	cs := nested(t, d, "spec", "template", "spec", "containers").([]any)
	for _, c := range cs {
		if m := c.(map[string]any); m["name"] == "manager" {
			return m
		}
	}
	t.Fatalf("Deployment %s has no container named manager", d.GetName())
	return nil
}

func stringList(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

func repoPath(p string) string { return filepath.Join(rootDir(), p) }

// gatewayContainer returns the gateway Deployment's container.
func gatewayContainer(t *testing.T, d *unstructured.Unstructured) map[string]any {
	t.Helper()
	for _, c := range nested(t, d, "spec", "template", "spec", "containers").([]any) {
		if m := c.(map[string]any); m["name"] == "gateway" {
			return m
		}
	}
	t.Fatalf("Deployment %s has no container named gateway", d.GetName())
	return nil
}
