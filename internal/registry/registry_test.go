package registry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// serve starts an in-memory registry, in front of which intercept (if not nil)
// may answer a request itself by returning true; it returns the host.
func serve(t *testing.T, intercept func(http.ResponseWriter, *http.Request) bool) string {
	t.Helper()
	mem := ggcrregistry.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if intercept == nil || !intercept(w, r) {
			mem.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

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

// layerImage is a BuildKit-cache-shaped manifest (cacheconfig config) with layers.
func layerImage(t *testing.T, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(must(random.Image(1, 0)), layers...)
	if err != nil {
		t.Fatal(err)
	}
	return mutate.ConfigMediaType(img, CacheConfigType)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestRefsImportableAndLayers(t *testing.T) {
	t.Parallel()
	// /v2/broken/ answers 403: neither "exists" nor "not found".
	host := serve(t, func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/v2/broken/") {
			http.Error(w, `{"errors":[{"code":"DENIED","message":"no"}]}`, http.StatusForbidden)
			return true
		}
		return false
	})

	base := must(random.Layer(64, "application/vnd.oci.image.layer.v1.tar+gzip"))
	deps := must(random.Layer(64, "application/vnd.oci.image.layer.v1.tar+gzip"))
	src := must(random.Layer(64, "application/vnd.oci.image.layer.v1.tar+gzip"))
	push(t, host, "app:cache-main", layerImage(t, base, deps)) // the default branch: base + deps
	push(t, host, "app:cache-other", layerImage(t, base))      // shares only the base layer
	push(t, host, "app:built", layerImage(t, base, deps, src)) // this run's image

	reg := New(authn.DefaultKeychain, host)
	refs := []string{host + "/app:cache-feature", host + "/app:cache-other", host + "/broken:cache", host + "/app:cache-main"}
	probed := reg.Probe(context.Background(), refs)
	if probed[0].Exists() || probed[0].Err != nil || probed[2].Err == nil || probed[2].Unreachable {
		t.Errorf("missing ref: %+v; broken ref: %+v", probed[0], probed[2])
	}
	for _, i := range []int{1, 3} {
		if probed[i].Kind != Cache || probed[i].Err != nil {
			t.Errorf("%s: kind %v, err %v; want a cache", probed[i].Ref, probed[i].Kind, probed[i].Err)
		}
	}
	built, err := reg.Layers(context.Background(), host+"/app:built")
	if err != nil {
		t.Fatal(err)
	}
	// The layers the run compares to tell which cache served the build.
	for _, want := range []struct {
		p    Ref
		n    int
		what string
	}{{probed[3], 2, "cache-main"}, {probed[1], 1, "cache-other"}} {
		n := 0
		for l := range built {
			if want.p.Layers[l] {
				n++
			}
		}
		if n != want.n {
			t.Errorf("%s holds %d of the image's layers, want %d", want.what, n, want.n)
		}
	}
}

// An image pushed to a cache tag is reported as such and never imported; the
// layers of a multi-platform image (an index) are its children's layers.
func TestIndexesAndNonCacheTags(t *testing.T) {
	t.Parallel()
	host := serve(t, nil)

	base := must(random.Layer(64, "application/vnd.oci.image.layer.v1.tar+gzip"))
	arm := must(random.Layer(64, "application/vnd.oci.image.layer.v1.tar+gzip"))
	push(t, host, "app:cache-main", layerImage(t, base, arm))
	plain, err := mutate.AppendLayers(must(random.Image(1, 0)), base)
	if err != nil {
		t.Fatal(err)
	}
	push(t, host, "app:cache-image", plain) // an ordinary image on a cache tag
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, "application/vnd.oci.image.index.v1+json"),
		mutate.IndexAddendum{Add: plain}, mutate.IndexAddendum{Add: must(mutate.AppendLayers(must(random.Image(1, 0)), arm))})
	r, err := name.ParseReference(host+"/app:multi", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}

	reg := New(authn.DefaultKeychain, host)
	probed := reg.Probe(context.Background(), []string{host + "/app:cache-image", host + "/app:cache-main"})
	if probed[0].Kind != NotCache {
		t.Errorf("image on a cache tag: kind %v", probed[0].Kind)
	}
	if probed[1].Kind != Cache {
		t.Errorf("cache-main: kind %v, want a cache", probed[1].Kind)
	}
	built, err := reg.Layers(context.Background(), host+"/app:multi")
	if err != nil {
		t.Fatal(err)
	}
	if !built[must(base.Digest()).String()] || !built[must(arm.Digest()).String()] {
		t.Fatalf("layers of the index %v: want both platforms' layers", built)
	}
	for l := range built {
		if !probed[1].Layers[l] {
			t.Errorf("layer %s of the multi-platform image is not among cache-main's %v", l, probed[1].Layers)
		}
	}
}

// CheckBlobs finds the blob a cache's manifest names and the registry lost,
// with one HEAD request per blob.
func TestCacheMissingABlobIsNotImported(t *testing.T) {
	t.Parallel()
	lost := must(random.Layer(64, "application/vnd.oci.image.layer.v1.tar+gzip"))
	lostPath := "/v2/app/blobs/" + must(lost.Digest()).String()
	var heads atomic.Int32
	host := serve(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodHead || !strings.Contains(r.URL.Path, "/blobs/") {
			return false
		}
		heads.Add(1)
		if r.URL.Path == lostPath {
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}`, http.StatusNotFound)
			return true
		}
		return false
	})
	base := must(random.Layer(64, "application/vnd.oci.image.layer.v1.tar+gzip"))
	push(t, host, "app:cache-feature", layerImage(t, base, lost))
	push(t, host, "app:cache-main", layerImage(t, base))

	heads.Store(0) // the pushes asked too
	reg := New(authn.DefaultKeychain, host)
	probed := reg.Probe(context.Background(), []string{host + "/app:cache-feature", host + "/app:cache-main"})
	if n := heads.Load(); n != 0 {
		t.Errorf("Probe asked %d blobs; want none (CheckBlobs does)", n)
	}
	for i := range probed {
		reg.CheckBlobs(context.Background(), &probed[i])
	}
	own, main := probed[0], probed[1]
	if !slices.Equal(own.Missing, []string{must(lost.Digest()).String()}) || own.Complete || own.Err != nil {
		t.Errorf("damaged cache: missing %q complete %v err %v; want the lost layer missing", own.Missing, own.Complete, own.Err)
	}
	if !main.Complete || len(main.Missing) > 0 {
		t.Errorf("intact cache: missing %q complete %v err %v", main.Missing, main.Complete, main.Err)
	}
	// config + 2 layers of the damaged cache, config + 1 layer of the fallback
	if n := heads.Load(); n != 5 {
		t.Errorf("%d blob HEAD requests; want 5", n)
	}
}

// A host that accepts connections and never answers costs one bounded wait, and
// its refs are not imported (BuildKit would hang on them too). The host never
// answers and the test sets no deadline: only the probe's own can end the wait
// and mark the refs unreachable (a hang is go test's timeout).
func TestUnresponsiveHostIsBoundedAndNotImported(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out ProbeTimeout (30 s); runs in make test (skipped under -short)")
	}
	t.Parallel()
	host := teststack.StuckHost(t)
	reg := New(authn.DefaultKeychain, host)
	probed := reg.Probe(context.Background(), []string{host + "/app:cache-a", host + "/app:cache-b"})
	for _, p := range probed {
		if !p.Unreachable || p.Exists() {
			t.Errorf("%s: unreachable=%v exists=%v err=%v; want unreachable", p.Ref, p.Unreachable, p.Exists(), p.Err)
		}
	}
}
