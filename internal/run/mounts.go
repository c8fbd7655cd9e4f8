package run

import (
	"context"
	"os"
	"strings"

	"github.com/ecr-build-cache/ecr-build-cache/internal/buildkitconn"
	"github.com/ecr-build-cache/ecr-build-cache/internal/cachemount"
)

// seedMounts is the cache-mounts phase before the build's solve: it seeds the
// Dockerfile's cache mounts from the registry (internal/cachemount), unless
// allCached (the build expects every step from the cache it imports, as its
// export decision does), when no RUN would read them. It returns what
// saveMounts needs, nil when there is nothing to save (no input, no mount
// kept, or a run that writes no cache); only the run's end is an error.
func (r *runner) seedMounts(ctx context.Context, b cachemount.Builder, ep buildkitconn.Endpoint, tgt target, plan cachePlan, allCached bool) (*cachemount.Session, error) {
	if len(r.cache.CacheMounts) == 0 {
		return nil, nil
	}
	if tgt.offline() {
		r.a.Infof("cache mounts: not kept: this run has no registry")
		return nil, nil
	}
	helper, err := os.Executable()
	if err != nil {
		r.a.Warningf("cache mounts: not kept: cannot find this action's binary to copy them with: %v", err)
		return nil, nil
	}
	imports, export := plan.MountsImports, plan.MountsExport
	if export == "" {
		r.a.Infof("cache mounts: read only: %s", plan.ExportReason)
	}
	r.a.Group("Seed cache mounts")
	defer r.a.EndGroup()
	// A builder the action did not start may hold other workflows' mounts.
	var shared string
	if ep.Container == "" {
		shared = ep.Source
	}
	s, err := cachemount.Seed(ctx, cachemount.Options{
		Builder: b, Registry: tgt.client, Log: r.a, Helper: helper,
		Dockerfile: r.inputs.Dockerfile, Spec: r.cache.CacheMounts, BuildArgs: r.inputs.BuildArgs,
		Platforms: r.inputs.Platforms, Target: r.inputs.Target,
		Imports: imports, Export: export, MaxSize: r.cache.CacheMountsMaxSize, Timeout: r.cache.CacheExportTimeout,
		Shared: shared, SharedSave: r.cache.CacheMountsSharedBuilder, AllCached: allCached,
	})
	if export == "" {
		return nil, err // nothing to save
	}
	return s, err
}

// saveMounts is the cache-mounts phase after the build and the cache export:
// it stores the mounts that changed, when the run writes its cache, and keeps
// an artifact it did not push again alive for ECR's lifecycle rules, as the
// export phase does the layer cache's tag.
func (r *runner) saveMounts(ctx context.Context, s *cachemount.Session, b built) error {
	if s == nil {
		return nil
	}
	r.a.Group("Save cache mounts")
	defer r.a.EndGroup()
	// Only a RUN changes a mount.
	ran := len(b.res.Steps) == 0 || b.res.CachedSteps() < len(b.res.Steps)
	kept, err := s.Save(ctx, ran, b.res.Steps)
	if err != nil {
		return err
	}
	if ref := s.Export(); kept {
		r.keepTagAlive(ctx, "cache mounts", ref[strings.LastIndexByte(ref, ':')+1:], ref)
	}
	return nil
}
