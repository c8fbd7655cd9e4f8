package probe

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// push writes img to host/repo:tag on a plain-HTTP registry.
func push(t *testing.T, host, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

func layerImage(t *testing.T, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(must(random.Image(1, 0)), layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestRefsImportableAndServed(t *testing.T) {
	t.Parallel()
	// /v2/broken/ answers 403: neither "exists" nor "not found".
	mem := registry.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v2/broken/") {
			http.Error(w, `{"errors":[{"code":"DENIED","message":"no"}]}`, http.StatusForbidden)
			return
		}
		mem.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	base := must(random.Layer(64, "application/vnd.oci.image.layer.v1.tar+gzip"))
	deps := must(random.Layer(64, "application/vnd.oci.image.layer.v1.tar+gzip"))
	src := must(random.Layer(64, "application/vnd.oci.image.layer.v1.tar+gzip"))
	push(t, host, "app:cache-main", layerImage(t, base, deps)) // the default branch: base + deps
	push(t, host, "app:cache-other", layerImage(t, base))      // shares only the base layer
	push(t, host, "app:built", layerImage(t, base, deps, src)) // this run's image

	reg := Registry{Keychain: authn.DefaultKeychain, InsecureHost: host}
	refs := []string{host + "/app:cache-feature", host + "/app:cache-other", host + "/broken:cache", host + "/app:cache-main"}
	probed := reg.Refs(context.Background(), refs)
	if got := Importable(probed); !slices.Equal(got, refs[1:2]) {
		t.Errorf("Importable = %q; want only the first existing ref", got)
	}
	// A ref that could not be checked is kept, with the next existing one behind it.
	if got := Importable(probed[2:]); !slices.Equal(got, refs[2:]) {
		t.Errorf("Importable = %q; want the unchecked ref, then the existing one", got)
	}
	if probed[0].Exists || probed[0].Err != nil || probed[2].Err == nil {
		t.Errorf("missing ref: %+v; broken ref: %+v", probed[0], probed[2])
	}
	served, err := reg.Served(context.Background(), probed, host+"/app:built")
	if err != nil || served != host+"/app:cache-main" {
		t.Errorf("Served = %q, %v; want cache-main, which holds two of the image's layers", served, err)
	}
}
