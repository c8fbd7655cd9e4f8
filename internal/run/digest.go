package run

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"
	"github.com/sethvargo/go-githubactions"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/config"
)

// A push-by-digest build pushes one platform of a multi-platform image by
// digest; a merge step (merge.go) assembles the image index from those. The
// build hands its digest over through the registry: it tags a one-entry index
// of the image with a staging tag named after the workflow run, attempt, cache
// scope and platform, which the merge step (merge-platforms) looks up. No job
// outputs (a matrix's legs would have to declare one output name per platform)
// and no artifacts.

// workerLister is the part of the BuildKit client that tells the builder's platform.
type workerLister interface {
	ListWorkers(ctx context.Context, opts ...client.ListWorkersOption) ([]*client.WorkerInfo, error)
}

// builderPlatform is the builder's native platform, normalized: its first
// worker's first platform, which BuildKit's Dockerfile frontend builds for when
// no platform is asked for.
func builderPlatform(ctx context.Context, w workerLister) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	workers, err := w.ListWorkers(ctx)
	if err != nil {
		return "", fmt.Errorf("list BuildKit workers: %w", err)
	}
	if len(workers) == 0 || len(workers[0].Platforms) == 0 {
		return "", fmt.Errorf("the builder lists no worker platform")
	}
	return platforms.Format(platforms.Normalize(workers[0].Platforms[0])), nil
}

// targetPlatform is the platforms this build targets, comma separated: the
// platforms input, else the builder's native platform ("" when unknown), with
// the policy keyed on it. A push-by-digest build without the platforms
// input keys its cache on the native platform, so the matrix legs of one
// branch, one per platform, never overwrite each other's cache: the same
// policy, its tags keyed on the platform (Decision.ForPlatform), not a
// second decision. Other builds without it keep the key they always had:
// keying them on the builder's platform too would make every existing cache
// cold once.
func targetPlatform(ctx context.Context, a *githubactions.Action, img config.Image, in config.Build, w workerLister, policy cacheref.Decision) (string, cacheref.Decision, error) {
	if len(in.Platforms) > 0 {
		return strings.Join(in.NormalizedPlatforms(), ","), policy, nil
	}
	native, err := builderPlatform(ctx, w)
	switch {
	case err != nil && img.PushByDigest:
		return "", policy, fmt.Errorf("push-by-digest: cannot tell the builder's platform, which keys the cache and names the staged image (%w); set the platforms input", err)
	case err != nil:
		a.Infof("builder platform: unknown (%v)", err)
		return "", policy, nil
	case !img.PushByDigest:
		return native, policy, nil
	}
	return native, policy.ForPlatform(native), nil
}

// workflowRun is the run and attempt the runner says this step belongs to.
type workflowRun struct {
	id      string
	attempt int
}

func currentRun(a *githubactions.Action) workflowRun {
	attempt, err := strconv.Atoi(a.Getenv("GITHUB_RUN_ATTEMPT"))
	if err != nil || attempt < 1 {
		attempt = 1
	}
	return workflowRun{id: a.Getenv("GITHUB_RUN_ID"), attempt: attempt}
}

// stagingKind keys staging tags: it is hashed into the tag, so a staging tag
// never equals a branch's cache tag.
const stagingKind = "stage"

// stagingTag is the tag the push-by-digest build of platform in cache-scope
// scope stages its image under, in attempt of run: cacheref's tag form, so it
// reads <prefix>-stage-<run>-<attempt>[-<scope>]-<platform>-<hash> and falls
// under the cache tags' lifecycle rule and immutability exclusion.
func stagingTag(prefix, scope, platform string, run workflowRun, attempt int) string {
	key := cacheref.Key{Kind: stagingKind, Name: run.id + "-" + strconv.Itoa(attempt)}
	return cacheref.Tag(prefix, key, scope, platform)
}

// stage tags a pushed push-by-digest image for the merge step, in a workflow run.
func (r *runner) stage(ctx context.Context, b built) error {
	if !b.req.PushByDigest || !b.req.Push {
		return nil
	}
	run := currentRun(r.a)
	if run.id == "" {
		r.a.Infof("not in a workflow run (no GITHUB_RUN_ID): the image is not staged for merge-platforms; merge it with merge-digests")
		return nil
	}
	tag := b.req.Repository + ":" + stagingTag(r.cache.CacheTagPrefix, r.cache.CacheScope, r.platform, run, run.attempt)
	ann := map[string]string{
		stagingAnnotation + "run-id":      run.id,
		stagingAnnotation + "run-attempt": strconv.Itoa(run.attempt),
	}
	if err := r.reg.Stage(ctx, b.pushedRef(), tag, r.platform, ann); err != nil {
		return fmt.Errorf("stage the image for the merge step: %w", err)
	}
	r.a.Infof("staged %s for the merge step as %s", b.pushedRef(), tag)
	return nil
}

// stagingAnnotation prefixes the staging index's annotations.
const stagingAnnotation = "com.github.ecr-build-cache.stage."
