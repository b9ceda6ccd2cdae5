package packaging

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// installerImage is the image the bundle is built for in these tests.
const installerImage = "registry.example:5000/jeton/jeton:v9.9.9-test"

var (
	installerOnce   sync.Once
	installerErr    string
	installerOutput string
)

// applyInstaller builds the release bundle as `make build-installer IMG=...` does (into a
// temporary file rather than dist/install.yaml) and applies it to the package's control
// plane with kubectl, once. It returns kubectl's stderr (warnings).
func applyInstaller(t *testing.T) (bundle objects, stderr string) {
	t.Helper()
	path := filepath.Join(tmpDir, "install.yaml")
	installerOnce.Do(func() {
		if _, err := runCmd(t, nil, []string{"KUSTOMIZE=" + tool(t, "kustomize", "tools")}, "hack/build-installer.sh", installerImage, path); err != nil {
			installerErr = err.Error()
			return
		}
		b, err := os.ReadFile(path)
		if err != nil {
			installerErr = err.Error()
			return
		}
		// --force-conflicts: envtest created the CRDs first, with another field manager.
		_, errOut, err := env.Kubectl(t.Context(), b, "apply", "--server-side", "--force-conflicts", "-f", "-")
		if err != nil {
			installerErr = "kubectl apply -f install.yaml: " + err.Error() + "\n" + errOut
		}
		installerOutput = errOut
	})
	if installerErr != "" {
		t.Fatal(installerErr)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseManifests(t, string(b)), installerOutput
}

// TestInstallerBundle: dist/install.yaml installs the whole operator, gateway included, with
// kubectl alone, for the image it was built for, in a namespace that enforces the restricted
// Pod Security level.
func TestInstallerBundle(t *testing.T) {
	bundle, stderr := applyInstaller(t)
	if strings.Contains(stderr, "PodSecurity") {
		t.Errorf("the bundle's Deployment violates the restricted Pod Security level:\n%s", stderr)
	}
	d := bundle.get(t, "Deployment", operatorNamespace, "jeton-controller-manager")
	if img := container(t, d)["image"]; img != installerImage {
		t.Errorf("install.yaml runs image %v, want IMG %s", img, installerImage)
	}
	// The gateway is in the bundle, on the same image (checkGatewayDeployment), deployed but
	// idle: the manager's default delivery stays Direct.
	checkGatewayDeployment(t, bundle, "jeton-controller-manager", 2)
	checkGatewayService(t, bundle, 8080, "http")
	checkGatewayNetworkPolicy(t, bundle)
	if args := stringList(container(t, d)["args"]); !slices.Contains(args, "--default-delivery=Direct") ||
		!slices.Contains(args, "--gateway-url=http://jeton-gateway.jeton-system.svc:8080") {
		t.Errorf("install.yaml's manager args %q: want --default-delivery=Direct and --gateway-url at the gateway's Service", args)
	}
	// The bundle is config/default, image apart.
	if want := kustomize(t, "config/default"); strings.Join(want.keys(), ",") != strings.Join(bundle.keys(), ",") {
		t.Errorf("install.yaml holds %v, config/default %v", bundle.keys(), want.keys())
	}
	for _, k := range bundle.keys() {
		u := bundle[k]
		args := []string{"get", strings.ToLower(u.GetKind()), u.GetName()}
		if u.GetNamespace() != "" {
			args = append(args, "-n", u.GetNamespace())
		}
		if _, errOut, err := env.Kubectl(t.Context(), nil, args...); err != nil {
			t.Errorf("install.yaml did not create %s: %s", k, errOut)
		}
	}
	ns, _, err := env.Kubectl(t.Context(), nil, "get", "namespace", operatorNamespace, "-o", "jsonpath={.metadata.labels.pod-security\\.kubernetes\\.io/enforce}")
	if err != nil || ns != "restricted" {
		t.Errorf("namespace %s enforces Pod Security level %q, want restricted (%v)", operatorNamespace, ns, err)
	}
}
