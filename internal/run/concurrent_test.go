package run_test

import (
	"strings"
	"testing"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// Six runs at once (in-process, as matrix jobs sharing one buildkitd and one
// repository would) on three branches and two scopes each write their own
// cache: rebuilt one by one, each on a freshly pruned builder so that every hit
// can only come from the registry, each is fully cached from its own tag. The
// feature and release branches have main's cache of their scope as a fallback
// too (see TestBranchRebuildIsFullyCachedDespiteTheFallback).
func TestConcurrentBuildsKeepTheirOwnCaches(t *testing.T) {
	s := teststack.Get(t)
	type build struct {
		branch, scope, tag, greeting string
		cacheRef                     string
	}
	var builds []*build
	for _, branch := range []string{"main", "feature/a", "release/1.x"} {
		for _, scope := range []string{"linux/amd64", "linux/arm64"} {
			tag := strings.NewReplacer("/", "-", ".", "-").Replace(branch + "-" + scope)
			builds = append(builds, &build{branch: branch, scope: scope, tag: tag, greeting: "hello from " + tag})
		}
	}
	runFor := func(t *testing.T, b *build) *teststack.ActionRun {
		return pushRun(t, s, "concurrent", b.branch, map[string]string{
			"cache-scope": b.scope, "tags": b.tag, "build-args": "BASE=" + s.BaseImage + "\nGREETING=" + b.greeting,
		})
	}

	prune(t, s)
	if !t.Run("cold", func(t *testing.T) {
		for _, b := range builds {
			t.Run(b.tag, func(t *testing.T) {
				t.Parallel()
				b.cacheRef = mustRun(t, runFor(t, b))["cache-ref"]
			})
		}
	}) {
		t.FailNow()
	}
	refs := map[string]string{}
	for _, b := range builds {
		if other, dup := refs[b.cacheRef]; dup {
			t.Errorf("%s and %s both export to %s", b.tag, other, b.cacheRef)
		}
		refs[b.cacheRef] = b.tag
	}

	for _, b := range builds {
		prune(t, s)
		r := runFor(t, b)
		o := mustRun(t, r)
		if c, n := steps(t, o); c != 3 || n != 3 || o["cache-hit-ref"] != b.cacheRef {
			t.Errorf("%s: %d/%d steps cached, served by %q; want 3/3 from its own %s\n%s", b.tag, c, n, o["cache-hit-ref"], b.cacheRef, r.Stdout())
		}
		if got, err := teststack.ImageFile(s.Registry+"/concurrent:"+b.tag, "/app/greeting", nil); err != nil || got != b.greeting+"\n" {
			t.Errorf("%s: /app/greeting = %q, %v; want %q", b.tag, got, err, b.greeting)
		}
	}
}

// A branch whose own cache and the default branch's (its fallback) both exist
// must rebuild every step from its own cache. With several
// cache-from refs BuildKit may follow the fallback's records for the steps
// both share, and then miss the branch's later steps (moby/buildkit#6418).
func TestBranchRebuildIsFullyCachedDespiteTheFallback(t *testing.T) {
	s := teststack.Get(t)
	greeting := func(g string) map[string]string {
		return map[string]string{"build-args": "BASE=" + s.BaseImage + "\nGREETING=" + g}
	}
	main := mustRun(t, pushRun(t, s, "fallback", "main", greeting("main")))
	prune(t, s)
	own := mustRun(t, pushRun(t, s, "fallback", "feature/x", greeting("feature")))
	prune(t, s)

	r := pushRun(t, s, "fallback", "feature/x", greeting("feature"))
	o := mustRun(t, r)
	for _, ref := range []string{own["cache-ref"], main["cache-ref"]} {
		if _, found, err := teststack.Manifest(ref, nil); err != nil || !found {
			t.Fatalf("cache %s: found=%v err=%v", ref, found, err)
		}
	}
	if c, n := steps(t, o); c != 3 || n != 3 || o["cache-hit-ref"] != own["cache-ref"] {
		t.Errorf("%d/%d steps cached, served by %q; want 3/3 from the branch's own %s\n%s", c, n, o["cache-hit-ref"], own["cache-ref"], r.Stdout())
	}
}
