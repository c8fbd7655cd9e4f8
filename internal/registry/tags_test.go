package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// newHost serves an in-memory registry; DELETE answers 405 UNSUPPORTED when
// deletes is false, as distribution does with deletion off.
func newHost(t *testing.T, deletes bool) string {
	t.Helper()
	mem := ggcrregistry.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete && !deletes {
			w.WriteHeader(http.StatusMethodNotAllowed)
			fmt.Fprint(w, `{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}`)
			return
		}
		mem.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestTagDigestsAndDeleteManifest(t *testing.T) {
	t.Parallel()
	host := newHost(t, true)
	a, b := must(random.Image(64, 1)), must(random.Image(64, 1))
	for _, tag := range []string{"a1", "a2", "a3", "a4", "a5"} {
		push(t, host, "app:"+tag, a)
	}
	push(t, host, "app:b", b)
	c := New(authn.DefaultKeychain, host)
	got, err := c.TagDigests(context.Background(), host+"/app")
	if err != nil {
		t.Fatal(err)
	}
	ad, bd := must(a.Digest()).String(), must(b.Digest()).String()
	want := map[string]string{"a1": ad, "a2": ad, "a3": ad, "a4": ad, "a5": ad, "b": bd}
	if len(got) != len(want) {
		t.Errorf("TagDigests = %v, want %v", got, want)
	}
	for tag, d := range want {
		if got[tag] != d {
			t.Errorf("%s: %s, want %s", tag, got[tag], d)
		}
	}

	if err := c.DeleteManifest(context.Background(), host+"/app", bd); err != nil {
		t.Fatal(err)
	}
	if p := c.Probe(context.Background(), []string{host + "/app@" + bd}); p[0].Exists() || p[0].Err != nil {
		t.Errorf("the deleted manifest is still there: %+v", p[0])
	}

	off := newHost(t, false)
	push(t, off, "app:a", a)
	err = New(authn.DefaultKeychain, off).DeleteManifest(context.Background(), off+"/app", ad)
	if !errors.Is(err, ErrDeleteUnsupported) {
		t.Errorf("a registry without deletes: %v, want ErrDeleteUnsupported", err)
	}
}

// Refresh puts the cache manifest again with one annotation more: a new
// digest over the same config and layers, still a cache.
func TestRefreshChangesOnlyTheAnnotation(t *testing.T) {
	t.Parallel()
	host := newHost(t, true)
	img := layerImage(t, must(random.Layer(64, "application/vnd.oci.image.layer.v1.tar+gzip")))
	push(t, host, "app:cache-main", img)
	c := New(authn.DefaultKeychain, host)
	at := time.Date(2025, 3, 5, 9, 30, 0, 0, time.UTC)
	digest, err := c.Refresh(context.Background(), host+"/app:cache-main", at)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Probe(context.Background(), []string{host + "/app:cache-main"})[0]
	if p.Kind != Cache || p.desc.Digest.String() != digest || digest == must(img.Digest()).String() {
		t.Fatalf("after refresh: kind %v, digest %s (returned %s, before %s)", p.Kind, p.desc.Digest, digest, must(img.Digest()))
	}
	var before, after map[string]any
	if err := json.Unmarshal(must(img.RawManifest()), &before); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(p.desc.Manifest, &after); err != nil {
		t.Fatal(err)
	}
	annotations, _ := after["annotations"].(map[string]any)
	if annotations[RefreshAnnotation] != "2025-03-05T09:30:00Z" {
		t.Errorf("annotations %v", annotations)
	}
	delete(after, "annotations")
	if b, a := must(json.Marshal(before)), must(json.Marshal(after)); string(a) != string(b) {
		t.Errorf("refresh changed more than the annotation:\n%s\n%s", b, a)
	}
}
