//go:build unix

package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/util/yaml"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/testenv"
)

// TestSampleTokensCoverSamples guards the local run: every token Secret that
// config/samples references must be minted by `make dev`, for the right API, or the
// samples would stay SecretNotFound.
func TestSampleTokensCoverSamples(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	minted := map[string]jetonv1alpha1.API{}
	for _, s := range sampleTokens {
		if _, dup := minted[s.secret]; dup {
			t.Errorf("Secret %s is minted twice", s.secret)
		}
		minted[s.secret] = s.api
	}

	files, err := filepath.Glob(filepath.Join(root, "config", "samples", "jeton_*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples found: %v", err)
	}
	referenced := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for {
			// Both kinds that reference a token share these fields.
			var obj struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
				Spec struct {
					API            jetonv1alpha1.API                `json:"api"`
					TokenSecretRef jetonv1alpha1.SecretKeyReference `json:"tokenSecretRef"`
				} `json:"spec"`
			}
			if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if obj.Kind != "Habilitation" && obj.Kind != "TechnicalToken" {
				continue
			}
			ref := obj.Spec.TokenSecretRef
			referenced[ref.Name] = true
			api, ok := minted[ref.Name]
			switch {
			case !ok:
				t.Errorf("%s %s references Secret %s, which the local run does not create", obj.Kind, obj.Metadata.Name, ref.Name)
			case api != obj.Spec.API:
				t.Errorf("%s %s is for %s but the local run mints Secret %s for %s", obj.Kind, obj.Metadata.Name, obj.Spec.API, ref.Name, api)
			case ref.Key != "token":
				t.Errorf("%s %s reads key %q; the local run writes key \"token\"", obj.Kind, obj.Metadata.Name, ref.Key)
			}
		}
	}
	for name := range minted {
		if !referenced[name] {
			t.Errorf("the local run mints Secret %s that no sample references", name)
		}
	}
}
