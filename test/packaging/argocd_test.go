package packaging

import (
	"fmt"
	"os"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

var jetonKinds = []string{"PublicClient", "Habilitation", "TechnicalToken"}

// healthScripts reads config/argocd/argocd-cm.yaml: one health script per jeton kind.
func healthScripts(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(repoPath("config/argocd/argocd-cm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(b, &cm); err != nil {
		t.Fatal(err)
	}
	scripts := map[string]string{}
	for _, kind := range jetonKinds {
		// Argo CD's key for the health check of group jeton.dev, kind <kind>.
		s := cm.Data["resource.customizations.health.jeton.dev_"+kind]
		if s == "" {
			t.Fatalf("config/argocd/argocd-cm.yaml has no health check for %s", kind)
		}
		scripts[kind] = s
	}
	return scripts
}

type health struct{ status, message string }

// argoHealth runs script as Argo CD does: the live object as the global obj, the script's
// returned table gives status and message. Only the libraries Argo CD opens are available.
func argoHealth(script string, obj map[string]any) (health, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		return health{}, err
	}
	ret, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return health{}, fmt.Errorf("the script returned %s, not a table", L.Get(-1).Type())
	}
	return health{status: ret.RawGetString("status").String(), message: ret.RawGetString("message").String()}, nil
}

// toLua converts a JSON-decoded value as Argo CD does: objects and arrays become tables
// (arrays 1-based), numbers LNumber.
func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(x)
	case string:
		return lua.LString(x)
	case int64:
		return lua.LNumber(x)
	case float64:
		return lua.LNumber(x)
	case map[string]any:
		t := L.NewTable()
		for k, e := range x {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range x {
			t.Append(toLua(L, e))
		}
		return t
	default:
		panic(fmt.Sprintf("toLua: unexpected %T", v))
	}
}

// testArgoCDHealth: one case per health outcome and the reason for it, each on a status the
// real reconcilers wrote.
func testArgoCDHealth(t *testing.T, obs observed) {
	scripts := healthScripts(t)
	if scripts["PublicClient"] != scripts["Habilitation"] || scripts["Habilitation"] != scripts["TechnicalToken"] {
		t.Errorf("the three health scripts of config/argocd/argocd-cm.yaml differ: keep one script for all kinds")
	}
	cases := []struct {
		object, status string
		// message holds the Ready reason or what Argo CD users are waiting for.
		message string
	}{
		{"PublicClient/pkg-ville", "Healthy", "Ready"},
		{"Habilitation/hab-ok", "Healthy", "Injected"},
		// Ready stays True while the token still works: Healthy, the message warns.
		{"Habilitation/hab-7d", "Healthy", "TokenExpiringSoon"},
		{"TechnicalToken/tt-ok", "Healthy", "ProbeSucceeded"},
		// Stalled: a human must act.
		{"PublicClient/pkg-squat", "Degraded", "NamespaceOwnedElsewhere"},
		{"Habilitation/hab-elsewhere", "Degraded", "NamespaceNotAllowed"},
		{"Habilitation/hab-expired", "Degraded", "TokenExpired"},
		// Ready=False without Stalled.
		{"Habilitation/hab-nosecret", "Degraded", "SecretNotFound"},
		{"TechnicalToken/tt-revoked", "Degraded", "Revoked"},
		// Reconciling=True: the first probe is in flight.
		{"TechnicalToken/tt-slow", "Progressing", "ProbePending"},
		// spec.generation ahead of status.observedGeneration.
		{"Habilitation/hab-ok (spec edited, not observed)", "Progressing", "Waiting for jeton to observe generation 2"},
		// No status at all.
		{"PublicClient/pkg-new (never reconciled)", "Progressing", "Waiting for jeton to reconcile"},
		{"TechnicalToken/tt-suspended", "Suspended", "spec.suspend"},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		obj, ok := obs.objects[c.object]
		if !ok {
			t.Fatalf("no captured object %s", c.object)
		}
		kind, _, _ := strings.Cut(c.object, "/")
		h, err := argoHealth(scripts[kind], obj)
		if err != nil {
			t.Errorf("%s: the health script failed: %v", c.object, err)
			continue
		}
		seen[h.status] = true
		if h.status != c.status || !strings.Contains(h.message, c.message) {
			t.Errorf("%s: health %s %q, want %s with %q", c.object, h.status, h.message, c.status, c.message)
		}
	}
	for _, s := range []string{"Healthy", "Progressing", "Degraded", "Suspended"} {
		if !seen[s] {
			t.Errorf("no case ends %s", s)
		}
	}
}
