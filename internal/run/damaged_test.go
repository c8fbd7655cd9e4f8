package run_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/faultproxy"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// A cache must never make a build worse: these tests damage the cache on the
// real stack.

// cacheLayers returns the layer digests of the cache manifest tagged ref.
func cacheLayers(t *testing.T, ref string) []string {
	t.Helper()
	_, m := parsedManifest(t, ref)
	var out []string
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
	}
	return out
}

// loseBlob deletes a blob from ref's repository, as a registry that lost it
// (a garbage-collection race, an interrupted replication) answers.
func loseBlob(t *testing.T, ref, digest string) {
	t.Helper()
	n, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodDelete, fmt.Sprintf("http://%s/v2/%s/blobs/%s", n.Context().RegistryStr(), n.Context().RepositoryStr(), digest), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE blob %s of %s: %s", digest, ref, resp.Status)
	}
}

// assertComplete fails t unless ref's cache manifest changed from before and
// the registry has every blob it names.
func assertRepaired(t *testing.T, ref, before string) {
	t.Helper()
	after, missing := cacheManifest(t, ref)
	if after == before || len(missing) > 0 {
		t.Errorf("cache %s: manifest %s (before %s), missing blobs %q; want a new complete cache", ref, after, before, missing)
	}
}

// A cache whose registry lost one of its blobs is not imported (a HEAD per
// blob finds it out): the build runs cold, with a warning naming the cache,
// and exports a new complete cache, so the next run is warm again. Today a
// lost blob fails every later build of the branch, and of new branches that
// fall back to it; with push: false the steps pass as cached and nothing
// repairs the cache.
func TestLostCacheBlobIsNotImportedAndTheCacheIsRepaired(t *testing.T) {
	s := teststack.Get(t)
	for _, tc := range []struct {
		name, repo, branch string
		push               bool
	}{
		{"push", "lost-blob", "main", true},
		{"no push", "lost-blob-nopush", "main", false},
		{"new branch falling back to it", "lost-blob-fallback", "feature", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			damaged := mustRun(t, pushRun(t, s, tc.repo, "main", nil))["cache-ref"]
			before, _ := cacheManifest(t, damaged)
			layers := cacheLayers(t, damaged)
			lost := layers[len(layers)-1]
			loseBlob(t, damaged, lost)
			prune(t, s)

			r := pushRun(t, s, tc.repo, tc.branch, map[string]string{"push": fmt.Sprint(tc.push)})
			o := mustRun(t, r)
			warning := "::warning::cache ref " + damaged + ": damaged: the registry lacks 1 of its blobs (" + lost + "), not imported"
			if !strings.Contains(r.Stdout(), warning) {
				t.Errorf("no warning %q:\n%s", warning, r.Stdout())
			}
			if c, n := steps(t, o); c != 0 || n != 3 || o["cache-from"] != "" || o["cache-hit-ref"] != "" {
				t.Errorf("%d/%d steps cached, cache-from %q, cache-hit-ref %q; want a cold build importing nothing", c, n, o["cache-from"], o["cache-hit-ref"])
			}
			if tc.push {
				if got, err := teststack.ImageFile(s.Registry+"/"+tc.repo+":latest", "/app/greeting", nil); err != nil || got != "hello\n" {
					t.Errorf("/app/greeting = %q, %v", got, err)
				}
			}
			if o["cache-ref"] == damaged {
				assertRepaired(t, damaged, before)
			} else if _, missing := cacheManifest(t, o["cache-ref"]); len(missing) > 0 {
				t.Errorf("the new branch's cache %s lacks %q", o["cache-ref"], missing)
			}

			prune(t, s)
			warm := mustRun(t, pushRun(t, s, tc.repo, tc.branch, map[string]string{"push": fmt.Sprint(tc.push)}))
			if c, n := steps(t, warm); c != 3 || n != 3 || warm["cache-from"] != o["cache-ref"] {
				t.Errorf("next run: %d/%d steps cached from %q; want 3/3 from %s", c, n, warm["cache-from"], o["cache-ref"])
			}
		})
	}
}

// A cache whose blobs the registry lists but cannot serve fails the build
// that imports it; the build is tried once more without it, succeeds with a
// warning naming the cache, and the damaged cache is replaced, never kept.
func TestBuildFailingWithTheCacheIsRetriedWithoutIt(t *testing.T) {
	s := teststack.Get(t)
	before := mustRun(t, greetingRun(t, s, "unreadable-cache", "unreadable-cache", "one", nil))["cache-ref"]
	beforeDigest, _ := cacheManifest(t, before)
	// HEAD finds every blob; fetching the layers fails.
	rule := &faultproxy.Rule{Method: "GET", Path: `^/v2/unreadable-cache/blobs/(` + strings.Join(cacheLayers(t, before), "|") + `)$`, Status: 404,
		Body: `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`}
	p := faultyRegistry(t, s, rule)
	prune(t, s)

	// A new greeting: the last step runs, on the cached layers below it.
	r := greetingRun(t, s, "unreadable-cache", "unreadable-cache", "two", map[string]string{"registry": p.URL})
	o := mustRun(t, r)
	ref := withHost(before, p.Host)
	if rule.Matched() == 0 {
		t.Fatalf("no layer was fetched: the fault never happened\n%s", r.Stdout())
	}
	want := "::warning::cache " + ref + " is damaged: the build failed with it and succeeded without it; a new complete cache is exported to " + ref
	if !strings.Contains(r.Stdout(), want) || strings.Contains(r.Stdout(), "::error") {
		t.Errorf("no warning %q, or an error:\n%s", want, r.Stdout())
	}
	if o["cache-from"] != "" || o["cache-hit-ref"] != "" || o["digest"] == "" {
		t.Errorf("outputs %v; want nothing imported and the image pushed", o)
	}
	if got, err := teststack.ImageFile(s.Registry+"/unreadable-cache:latest", "/app/greeting", nil); err != nil || got != "two\n" {
		t.Errorf("/app/greeting = %q, %v", got, err)
	}
	if sum := r.Summary(t); !strings.Contains(sum, "(damaged: the build failed with it and succeeded without it)") {
		t.Errorf("the summary does not call the cache damaged:\n%s", sum)
	}
	assertRepaired(t, before, beforeDigest)
}

// An ordinary image pushed to a branch's cache tag is not a cache: the run
// warns, imports main's cache, and never says the image served the hits,
// although it holds the same layers.
func TestImageOnTheCacheTagNeverServedTheHits(t *testing.T) {
	s := teststack.Get(t)
	main := mustRun(t, pushRun(t, s, "image-on-cache-tag", "main", nil))
	src, err := name.ParseReference(s.Registry+"/image-on-cache-tag:latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Get(src)
	if err != nil {
		t.Fatal(err)
	}
	own := s.Registry + "/image-on-cache-tag:" + cacheTag(cacheref.BranchKey("feature"), "", "")
	dst, err := name.NewTag(own, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Tag(dst, img); err != nil {
		t.Fatal(err)
	}
	prune(t, s)

	r := pushRun(t, s, "image-on-cache-tag", "feature", map[string]string{"tags": "feature"})
	o := mustRun(t, r)
	if c, n := steps(t, o); c != 3 || n != 3 || o["cache-ref"] != own {
		t.Fatalf("%d/%d steps cached, cache-ref %q; want 3/3 from main's cache, exported to %s\n%s", c, n, o["cache-ref"], own, r.Stdout())
	}
	if !strings.Contains(r.Stdout(), "::warning::cache ref "+own+": not a BuildKit cache") {
		t.Errorf("no warning about the image on the cache tag:\n%s", r.Stdout())
	}
	if o["cache-from"] != main["cache-ref"] || o["cache-hit-ref"] != main["cache-ref"] {
		t.Errorf("cache-from %q, cache-hit-ref %q; want main's cache %s", o["cache-from"], o["cache-hit-ref"], main["cache-ref"])
	}
	sum := r.Summary(t)
	if !strings.Contains(sum, "`"+own+"` (not a BuildKit cache") || !strings.Contains(sum, "`"+main["cache-ref"]+"` (imported, served the hits)") {
		t.Errorf("summary:\n%s", sum)
	}
}
