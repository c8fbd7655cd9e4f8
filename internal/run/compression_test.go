package run_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// The compression input compresses the layers a run builds the same way in the
// image and in the cache: each is compressed once, so the image's layers are
// the cache's very blobs. Unset, the layers only the cache holds are zstd and
// the image's gzip, still one blob each. The base image's layers keep their
// blobs.

// builtLayers returns the layers of the manifest at ref that are not the base
// image's.
func builtLayers(t *testing.T, s *teststack.Stack, ref string) []v1.Descriptor {
	t.Helper()
	_, base := parsedManifest(t, s.BaseImage)
	_, m := parsedManifest(t, ref)
	var built []v1.Descriptor
	for _, l := range m.Layers {
		if !hasLayer(base.Layers, l) {
			built = append(built, l)
		}
	}
	return built
}

// freshContext is a build context whose steps no earlier build made (with the
// NONCE build-arg): a step the shared builder already made keeps the blob it
// has, as compression is not forced.
func freshContext(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range map[string]string{
		// deps is in the cache (cache-mode max) but not in the image: only
		// the cache exporter compresses its layer.
		"Dockerfile": `ARG BASE
FROM ${BASE} AS deps
ARG NONCE
RUN echo "deps $NONCE" > /deps
FROM ${BASE}
ARG NONCE
RUN echo "$NONCE" > /built
COPY --from=deps /deps /deps
COPY file.txt /file.txt
`,
		"file.txt": "copied\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// hasLayer tells whether layers hold l's blob.
func hasLayer(layers []v1.Descriptor, l v1.Descriptor) bool {
	return slices.ContainsFunc(layers, func(d v1.Descriptor) bool { return d.Digest == l.Digest })
}

func TestCompressionAppliesToImageAndCacheAlike(t *testing.T) {
	s := teststack.Get(t)
	const gzip, zstd = "application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar+zstd"
	for _, tc := range []struct {
		repo   string
		inputs map[string]string
		// image: the media type of every layer the run built into the image
		// (also the cache's blobs); cacheOnly: the deps stage's, only in the cache.
		image, cacheOnly string
	}{
		{"compress-zstd", map[string]string{"compression": "zstd", "compression-level": "9"}, zstd, zstd},
		{"compress-gzip", map[string]string{"compression": "gzip"}, gzip, gzip},
		// Unset: gzip for the image, zstd for what only the cache holds.
		{"compress-default", nil, gzip, zstd},
	} {
		t.Run(tc.repo, func(t *testing.T) {
			in := map[string]string{
				"context":    freshContext(t),
				"build-args": "BASE=" + s.BaseImage + "\nNONCE=" + strconv.FormatInt(time.Now().UnixNano(), 10),
			}
			for k, v := range tc.inputs {
				in[k] = v
			}
			o := mustRun(t, pushRun(t, s, tc.repo, "main", in))
			_, base := parsedManifest(t, s.BaseImage)
			_, img := parsedManifest(t, s.Registry+"/"+tc.repo+":latest")
			if n := len(base.Layers); len(img.Layers) != n+3 || !slices.EqualFunc(img.Layers[:n], base.Layers, func(a, b v1.Descriptor) bool { return a.Digest == b.Digest }) {
				t.Errorf("image layers %v; want the base image's %v unchanged (compression is not forced), then the 3 built", img.Layers, base.Layers)
			}
			built := builtLayers(t, s, s.Registry+"/"+tc.repo+":latest")
			cached := builtLayers(t, s, o["cache-ref"])
			for _, l := range built {
				// The same blob in the cache: the layer was compressed once.
				if !hasLayer(cached, l) {
					t.Errorf("image layer %s is not in the cache %s: compressed twice", l.Digest, o["cache-ref"])
				}
			}
			if len(cached) != len(built)+1 {
				t.Errorf("cache %s has %d built layers, want the image's %d and the deps stage's", o["cache-ref"], len(cached), len(built))
			}
			for _, l := range cached {
				want := tc.cacheOnly
				if hasLayer(built, l) {
					want = tc.image
				}
				if string(l.MediaType) != want {
					t.Errorf("layer %s (in the cache; %s in the image) is %s, want %s", l.Digest,
						map[bool]string{true: "also", false: "not"}[hasLayer(built, l)], l.MediaType, want)
				}
			}
		})
	}
}
