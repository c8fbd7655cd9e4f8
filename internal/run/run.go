// Package run ties one action run together, as a sequence of phases that hand
// typed results to each other:
//
//	inputs (config) -> policy (cacheref.Decision, its claim proven through the
//	GitHub API) -> target (builder, registry, credentials)
//	-> cache plan (derived refs, probed) -> build ([cache mounts seeded]
//	before its solve, unless every step is expected from the cache)
//	-> cache export -> [cache mounts saved] -> report
//
// The policy is decided once (target.go): what the run may push, pass to the
// build (secrets, entitlements) and which cache keys it reads and writes. The
// phases read it and never recompute it; cacheref holds every trust rule.
//
// A merge run (merge.go) stops after the target: it pushes an image index of
// images that push-by-digest builds (digest.go) pushed.
// On a deleted branch or a closed pull request, a cleanup (cleanup.go)
// replaces everything after the inputs: it deletes that key's cache tags.
//
// The build, export and report phases reach BuildKit through solve.Solver and
// the registry through Registry, so their decisions are tested with fakes
// (phases_test.go); the real ones run in the stack-backed tests. The other
// phases use concrete clients, tested against the real stack or a double:
// the ECR client (target, cleanup, refresh), the registry client (merge,
// cleanup), the GitHub API (the policy's claim, a rebase merge's pull
// request), the docker CLI (load), the
// BuildKit worker list (digest.go) and the cache mounts helper (mounts.go).
package run

import (
	"context"

	"github.com/moby/buildkit/session"
	"github.com/sethvargo/go-githubactions"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cachemount"
	"github.com/ecr-build-cache/ecr-build-cache/internal/config"
	"github.com/ecr-build-cache/ecr-build-cache/internal/ghout"
	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
	"github.com/ecr-build-cache/ecr-build-cache/internal/solve"
)

// Registry is the action's own registry client (internal/registry): probing
// and checking a cache's blobs before the build, checking the image, tagging, marking and reading layers
// after it.
type Registry interface {
	Probe(ctx context.Context, refs []string) []registry.Ref
	CheckBlobs(ctx context.Context, p *registry.Ref)
	Digest(ctx context.Context, ref string) (string, error)
	Tag(ctx context.Context, from registry.Ref, to string) error
	Annotate(ctx context.Context, ref string, set map[string]string) (string, error)
	Layers(ctx context.Context, ref string) (map[string]bool, error)
	Insecure(ref string) bool
	Stage(ctx context.Context, image, ref, platform string, annotations map[string]string) error
}

// Run performs the action's main step. a must print its workflow commands
// through out.Commands(); the build's output goes through out itself. environ
// is the step's environment, where undeclared inputs show as INPUT_*.
func Run(ctx context.Context, a *githubactions.Action, out *ghout.Writer, environ []string) error {
	cfg, err := config.Read(a, environ)
	if err != nil {
		return err
	}
	if cfg.Cleanup {
		return cleanup(ctx, a, cfg)
	}
	policy, err := decidePolicy(a, cfg)
	if err != nil {
		return err
	}
	if cfg.Merge {
		return merge(ctx, a, cfg, policy)
	}
	// The builder first: a wrong address fails before any registry or ECR call.
	solver, builder, err := connectBuilder(ctx, a, cfg, policy)
	if err != nil {
		return err
	}
	defer solver.Close()
	platform, policy, err := targetPlatform(ctx, a, cfg.Image, cfg.Build, solver, policy)
	if err != nil {
		return err
	}
	tgt, err := resolveTarget(ctx, a, cfg, policy)
	if err != nil {
		return err
	}
	if err := checkImageTags(cfg, tgt); err != nil {
		return err
	}
	r := &runner{a: a, image: cfg.Image, inputs: cfg.Build, cache: cfg.Cache, hostNetwork: cfg.BuildkitHostNetwork,
		out: out, solver: solver, reg: tgt.client, host: tgt.host, platform: platform,
		session: []session.Attachable{tgt.creds.Attachable()}, refresh: tgt.refresher(cfg.CacheRepository)}
	if cfg.Call != nil { // check, outline or targets instead of a build
		return r.call(ctx, *cfg.Call, solver, policy)
	}
	// Only a build writes a cache: the GitHub API is asked here, not for a
	// merge or a call.
	api, err := githubAPI(a, cfg.GitHubToken)
	if err != nil {
		return err
	}
	policy = askMerged(ctx, a, api, proveClaim(ctx, a, api, policy))
	plan, err := r.plan(ctx, tgt, policy)
	if err != nil {
		return err
	}
	var mounts *cachemount.Session
	r.beforeSolve = func(ctx context.Context, allCached bool) (err error) {
		mounts, err = r.seedMounts(ctx, solver, builder, tgt, plan, allCached)
		return err
	}
	b, err := r.build(ctx, plan)
	if err != nil {
		return err
	}
	if err := r.stage(ctx, b); err != nil {
		return err
	}
	exp, err := r.export(ctx, plan, b)
	if err != nil {
		return err
	}
	if err := r.saveMounts(ctx, mounts, b); err != nil {
		return err
	}
	return r.report(ctx, plan, b, exp, mounts)
}

// runner holds what every phase after the target uses: of the inputs, only
// their image, build and cache slices.
type runner struct {
	a      *githubactions.Action
	image  config.Image
	inputs config.Build
	cache  config.Cache
	// hostNetwork is buildkit-host-network, which the builder's start used;
	// the build names it when the policy withheld it.
	hostNetwork bool
	out         *ghout.Writer
	solver      solve.Solver
	reg         Registry
	// host is the registry that bare tags name; "" when offline.
	host string
	// platform is what the build targets (comma separated), or the builder's
	// native platform when no platforms are given and it is known.
	platform string
	// session carries the registry credentials to BuildKit.
	session []session.Attachable
	// refresh keeps a cache tag whose export is skipped young for ECR's
	// lifecycle rules; nil for other registries.
	refresh refresher
	// beforeSolve seeds the cache mounts once the build knows whether it
	// expects every step from the cache (allCached); nil for none.
	beforeSolve func(ctx context.Context, allCached bool) error
}
