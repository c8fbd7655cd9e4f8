package run_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ecr-build-cache/ecr-build-cache/internal/run"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// A host that accepts connections and never answers costs a bounded wait:
// as an extra cache-from ref, a warning and a build that goes on without it;
// as the registry, with no image to push, a cold build that exports no cache;
// as the registry of an image to push, a failure naming the host, before
// building. BuildKit has no response timeout: given such a ref, it would hang.
func TestStuckHostsCostABoundedWait(t *testing.T) {
	t.Parallel() // mostly waiting, and no prune
	s := teststack.Get(t)
	// Well above the probe's 30 s, well below a hang.
	const bound = 2 * time.Minute
	runBounded := func(t *testing.T, r *teststack.ActionRun) error {
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		defer cancel()
		err := run.Run(ctx, r.Action(), r.Writer(), r.Environ())
		if ctx.Err() != nil {
			t.Fatalf("the run was still going after %s:\n%s", bound, r.Stdout())
		}
		return err
	}
	t.Run("cache-from", func(t *testing.T) {
		t.Parallel()
		stuck := teststack.StuckHost(t) + "/app:cache"
		r := pushRun(t, s, "stuck-cache-from", "main", map[string]string{"cache-from": stuck})
		if err := runBounded(t, r); err != nil {
			t.Fatalf("run: %v\n%s", err, r.Stdout())
		}
		o := r.Outputs(t)
		if !strings.Contains(r.Stdout(), "::warning::cache ref "+stuck+": did not answer in time, not imported") || strings.Contains(o["cache-from"], stuck) {
			t.Errorf("cache-from output %q; want no import of %s, with a warning:\n%s", o["cache-from"], stuck, r.Stdout())
		}
		if _, found, err := teststack.Manifest(s.Registry+"/stuck-cache-from:latest", nil); err != nil || !found {
			t.Errorf("image not pushed: found=%v err=%v", found, err)
		}
	})
	t.Run("registry without push", func(t *testing.T) {
		t.Parallel()
		host := teststack.StuckHost(t)
		r := pushRun(t, s, "stuck-registry", "main", map[string]string{"registry": "http://" + host, "push": "false"})
		if err := runBounded(t, r); err != nil {
			t.Fatalf("run: %v\n%s", err, r.Stdout())
		}
		o := r.Outputs(t)
		if !strings.Contains(r.Stdout(), "::warning::registry "+host+" did not answer within 30s: the cache is not exported") || o["cache-ref"] != "" {
			t.Errorf("cache-ref %q; want no export, with a warning:\n%s", o["cache-ref"], r.Stdout())
		}
		if o["cache-from"] != "" || o["total-steps"] != "3" {
			t.Errorf("cache-from %q, %s steps; want the build, importing nothing", o["cache-from"], o["total-steps"])
		}
	})
	t.Run("registry", func(t *testing.T) {
		t.Parallel()
		host := teststack.StuckHost(t)
		r := pushRun(t, s, "stuck-registry", "main", map[string]string{"registry": "http://" + host})
		err := runBounded(t, r)
		if err == nil || !strings.Contains(err.Error(), "registry "+host+" did not answer within 30s, so the image cannot be pushed") {
			t.Errorf("run error %v; want the stuck registry named", err)
		}
		if strings.Contains(r.Stdout(), "[1/") {
			t.Errorf("the build started:\n%s", r.Stdout())
		}
	})
}
