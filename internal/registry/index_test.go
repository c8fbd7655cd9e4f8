package registry

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// platformImage is an image whose config says it is for os/arch.
func platformImage(t *testing.T, os, arch string) v1.Image {
	t.Helper()
	img := must(random.Image(64, 1))
	cf := must(img.ConfigFile()).DeepCopy()
	cf.OS, cf.Architecture = os, arch
	return must(mutate.ConfigFile(img, cf))
}

// pushByDigest pushes img to host/repo by digest only, as a push-by-digest build does.
func pushByDigest(t *testing.T, host, repo string, img v1.Image) string {
	t.Helper()
	ref := host + "/" + repo + "@" + must(img.Digest()).String()
	r, err := name.NewDigest(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return ref
}

func newRegistry(t *testing.T) (host string, c *Client) {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New())
	t.Cleanup(srv.Close)
	host = strings.TrimPrefix(srv.URL, "http://")
	return host, New(authn.DefaultKeychain, host)
}

func indexAt(t *testing.T, c *Client, ref string) *v1.IndexManifest {
	t.Helper()
	d, found, err := c.fetchRef(ref)
	if err != nil || !found {
		t.Fatalf("%s: found=%v, %v", ref, found, err)
	}
	if d.MediaType != types.OCIImageIndex {
		t.Fatalf("%s is a %s, want an OCI image index", ref, d.MediaType)
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(d.Manifest, &im); err != nil {
		t.Fatal(err)
	}
	return &im
}

// fetchRef gets ref's manifest; for tests.
func (c *Client) fetchRef(ref string) (*remote.Descriptor, bool, error) {
	n, err := c.parse(ref)
	if err != nil {
		return nil, false, err
	}
	d, err := c.fetch(context.Background(), n)
	return d, d != nil, err
}

func TestPushIndexMergesPlatformsUnderEveryTag(t *testing.T) {
	t.Parallel()
	host, c := newRegistry(t)
	amd := pushByDigest(t, host, "app", platformImage(t, "linux", "amd64"))
	i386 := pushByDigest(t, host, "app", platformImage(t, "linux", "386"))
	arm := pushByDigest(t, host, "team/arm", platformImage(t, "linux", "arm64")) // another repository: copied in

	idx, err := c.PushIndex(context.Background(), IndexRequest{
		Repository:  host + "/app",
		Manifests:   []string{amd, i386, arm},
		Tags:        []string{host + "/app:latest", host + "/app:v1"},
		Annotations: map[string]string{"org.opencontainers.image.description": "three"},
		Platforms:   []string{"linux/386", "linux/amd64", "linux/arm64"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(idx.Platforms, []string{"linux/amd64", "linux/386", "linux/arm64"}) || !slices.Equal(idx.Copied, []string{arm}) {
		t.Errorf("platforms %q, copied %q", idx.Platforms, idx.Copied)
	}
	for _, tag := range []string{"latest", "v1"} {
		d, _, err := c.fetchRef(host + "/app:" + tag)
		if err != nil || d.Digest != idx.Descriptor.Digest {
			t.Errorf("%s: %v, %v; want the index %s", tag, d, err, idx.Descriptor.Digest)
		}
	}
	im := indexAt(t, c, host+"/app:latest")
	var got []string
	for _, m := range im.Manifests {
		got = append(got, m.Platform.OS+"/"+m.Platform.Architecture+"@"+m.Digest.String())
	}
	want := []string{"linux/amd64@" + strings.Split(amd, "@")[1], "linux/386@" + strings.Split(i386, "@")[1], "linux/arm64@" + strings.Split(arm, "@")[1]}
	if !slices.Equal(got, want) || im.Annotations["org.opencontainers.image.description"] != "three" {
		t.Errorf("index entries %q, annotations %q; want %q", got, im.Annotations, want)
	}
	// The arm64 image now lives in app too, whole: the index is complete there.
	if _, found, err := c.fetchRef(host + "/app@" + strings.Split(arm, "@")[1]); err != nil || !found {
		t.Errorf("copied manifest missing from app: %v, %v", found, err)
	}
	if _, err := c.Layers(context.Background(), host+"/app:latest"); err != nil {
		t.Errorf("layers of the merged index: %v", err)
	}
}

// An image pushed with provenance is an index: its image and attestation
// entries are taken as they are, and only the image counts as a platform.
func TestPushIndexTakesAttestedImagesEntries(t *testing.T) {
	t.Parallel()
	host, c := newRegistry(t)
	img := platformImage(t, "linux", "amd64")
	att := platformImage(t, "unknown", "unknown")
	attested := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{
			Platform:    &v1.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": must(img.Digest()).String()},
		}})
	r := must(name.NewDigest(host+"/app@"+must(attested.Digest()).String(), name.Insecure))
	if err := remote.WriteIndex(r, attested); err != nil {
		t.Fatal(err)
	}
	i386 := pushByDigest(t, host, "app", platformImage(t, "linux", "386"))
	idx, err := c.PushIndex(context.Background(), IndexRequest{
		Repository: host + "/app", Manifests: []string{r.String(), i386}, Tags: []string{host + "/app:latest"},
	})
	if err != nil {
		t.Fatal(err)
	}
	im := indexAt(t, c, host+"/app:latest")
	if len(im.Manifests) != 3 || !slices.Equal(idx.Platforms, []string{"linux/amd64", "linux/386"}) ||
		im.Manifests[1].Annotations["vnd.docker.reference.digest"] != must(img.Digest()).String() {
		t.Errorf("entries %+v, platforms %q; want the image, its attestation and the 386 image", im.Manifests, idx.Platforms)
	}
}

func TestPushIndexRefusesEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	host, c := newRegistry(t)
	amd := pushByDigest(t, host, "app", platformImage(t, "linux", "amd64"))
	amd2 := pushByDigest(t, host, "app", platformImage(t, "linux", "amd64"))
	missing := host + "/app@sha256:" + strings.Repeat("0", 64)
	elsewhere := "registry.example/app@sha256:" + strings.Repeat("1", 64)
	_, err := c.PushIndex(context.Background(), IndexRequest{
		Repository: host + "/app",
		Manifests:  []string{amd, amd2, missing, elsewhere},
		Tags:       []string{host + "/app:latest", host + "/other:latest"},
	})
	if err == nil {
		t.Fatal("PushIndex succeeded")
	}
	for _, want := range []string{
		amd + " and " + amd2 + " are both linux/amd64: an index holds one image per platform; drop one",
		missing + ": no such manifest in " + host + "/app; was it pushed there",
		elsewhere + ": in another registry than " + host + "/app; push that platform to " + host,
		host + "/other:latest: not a tag of " + host + "/app",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, found, _ := c.fetchRef(host + "/app:latest"); found {
		t.Error("a refused merge pushed a tag")
	}
}

func TestPushIndexChecksTheExpectedPlatforms(t *testing.T) {
	t.Parallel()
	host, c := newRegistry(t)
	amd := pushByDigest(t, host, "app", platformImage(t, "linux", "amd64"))
	i386 := pushByDigest(t, host, "app", platformImage(t, "linux", "386"))
	_, err := c.PushIndex(context.Background(), IndexRequest{
		Repository: host + "/app", Manifests: []string{amd, i386}, Tags: []string{host + "/app:latest"},
		Platforms: []string{"linux/amd64", "linux/arm64"},
	})
	for _, want := range []string{"no image of linux/arm64 among", i386 + " is an image of linux/386, which is not one of linux/amd64, linux/arm64"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v; want %q", err, want)
		}
	}
}

func TestStagedImageRoundTrip(t *testing.T) {
	t.Parallel()
	host, c := newRegistry(t)
	ctx := context.Background()
	amd := pushByDigest(t, host, "app", platformImage(t, "linux", "amd64"))
	stage := host + "/app:cache-stage-1-1-linux-amd64-0123456789abcdef"
	if _, found, err := c.Staged(ctx, stage); found || err != nil {
		t.Fatalf("Staged before staging: found=%v, %v", found, err)
	}
	if err := c.Stage(ctx, amd, stage, "linux/amd64", map[string]string{"run": "1"}); err != nil {
		t.Fatal(err)
	}
	got, found, err := c.Staged(ctx, stage)
	if err != nil || !found || got != amd {
		t.Errorf("Staged = %q, %v, %v; want %q", got, found, err, amd)
	}
	// The tag names a one-entry index, never the image: removing it leaves the image alone.
	im := indexAt(t, c, stage)
	if len(im.Manifests) != 1 || im.Manifests[0].Platform.Architecture != "amd64" || im.Annotations["run"] != "1" {
		t.Errorf("staging index %+v", im)
	}
	push(t, host, "app:not-staged", platformImage(t, "linux", "amd64"))
	if _, found, err := c.Staged(ctx, host+"/app:not-staged"); !found || err == nil || !strings.Contains(err.Error(), "not a staged image") {
		t.Errorf("Staged on an image tag: found=%v, %v; want an error", found, err)
	}
}
