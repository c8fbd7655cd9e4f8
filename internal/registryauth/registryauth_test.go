package registryauth

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

func TestLookupPrefersSourcesThenDockerConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("octo:from-docker-config"))
	cfg := `{"auths": {"ghcr.io": {"auth": "` + auth + `"}, "https://index.docker.io/v1/": {"auth": "` + auth + `"}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := New(dir)
	s.Set("ghcr.io", Static(Credentials{Username: "bot", Password: "from-input"}))
	s.Set("broken.example", func(context.Context) (Credentials, error) { return Credentials{}, errors.New("token service down") })

	for host, want := range map[string]Credentials{
		"ghcr.io":              {"bot", "from-input"},          // an explicit source wins
		"registry-1.docker.io": {"octo", "from-docker-config"}, // docker login's key for Docker Hub
		"quay.io":              {},                             // nothing known: anonymous
	} {
		got, err := s.Lookup(context.Background(), host)
		if err != nil || got != want {
			t.Errorf("Lookup(%s) = %+v, %v; want %+v", host, got, err, want)
		}
	}
	if _, err := s.Lookup(context.Background(), "broken.example"); err == nil {
		t.Error("a failing source must fail the lookup")
	}
	before, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if string(before) != cfg {
		t.Error("the docker config was modified")
	}
}

func TestKeychain(t *testing.T) {
	t.Parallel()
	s := New(t.TempDir())
	s.Set("registry.example", Static(Credentials{Username: "AWS", Password: "pw"}))
	for repo, want := range map[string]authn.AuthConfig{
		"registry.example/app": {Username: "AWS", Password: "pw"},
		"other.example/app":    {},
	} {
		r, err := name.NewRepository(repo)
		if err != nil {
			t.Fatal(err)
		}
		a, err := authn.Resolve(context.Background(), s, r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.Authorization()
		if err != nil || *got != want {
			t.Errorf("%s: %+v, %v; want %+v", repo, got, err, want)
		}
	}
}

// An untrusted run's store answers only for the cache registry: docker-config
// credentials for other hosts never reach its build.
func TestRestrictedStoreIsAnonymousElsewhere(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("octo:from-docker-config"))
	cfg := `{"auths": {"ghcr.io": {"auth": "` + auth + `"}, "cache.example": {"auth": "` + auth + `"}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := New(dir)
	s.Set("registry.example", Static(Credentials{Username: "AWS", Password: "pw"}))
	s.Restrict("cache.example")
	for host, want := range map[string]Credentials{
		"cache.example":    {"octo", "from-docker-config"},
		"ghcr.io":          {},
		"registry.example": {},
	} {
		got, err := s.Lookup(context.Background(), host)
		if err != nil || got != want {
			t.Errorf("Lookup(%s) = %+v, %v; want %+v", host, got, err, want)
		}
	}
}
