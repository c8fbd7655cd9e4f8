package run

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sethvargo/go-githubactions"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/config"
	"github.com/ecr-build-cache/ecr-build-cache/internal/ghout"
	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
	"github.com/ecr-build-cache/ecr-build-cache/internal/solve"
)

// built is the build phase's result, with the request it ran.
type built struct {
	req solve.Request
	res *solve.Result
	// damaged are the imports of a first attempt that failed where the same
	// build without them succeeded: req imports nothing then.
	damaged []string
	// fallbacks name the ways the run left its one-solve path, in order.
	fallbacks []string
}

// The fallbacks a run can take, as the fallbacks output names them.
const (
	fallbackExportSolve       = "export-solve"        // the cache was exported by a solve of its own
	fallbackImageRetry        = "image-retry"         // the image was pushed again alone after a throttle, 5xx or upload race
	fallbackImageAfterTimeout = "image-after-timeout" // the cache export timed out before the image was in
	fallbackWithoutCache      = "without-cache"       // the build failed with a cache and ran again without it
)

// pushTimeout bounds one image push: far above a healthy push of a large image,
// it only stops a registry that stopped answering (BuildKit would wait forever).
const pushTimeout = 30 * time.Minute

// pushWaits are the waits before each new image push attempt after a 429 or
// 5xx. BuildKit does not show the registry's Retry-After, so a bounded backoff
// stands in for it: 30 s in all.
var pushWaits = []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second}

// build runs the Dockerfile build, pushing the image when the plan says so, in
// one solve that also exports the cache unless every step is expected to come
// from the one cache imported (then the export phase keeps or tags that cache,
// or exports in a solve of its own if steps ran after all). A build that fails
// with a cache imported is tried once more without it: a registry may have
// lost a blob of the cache since the probe, or the cache may be broken in a
// way no check sees; a cache must never make a build fail.
func (r *runner) build(ctx context.Context, plan cachePlan) (built, error) {
	img := r.image
	req := r.request(plan.policy)
	req.Push = plan.push
	req.PushTimeout = pushTimeout
	req.ImageAttrs = img.ImageAttrs
	req.CacheImports = plan.imports
	req.CacheMode = r.cache.CacheMode
	req.CacheExportTimeout = r.cache.CacheExportTimeout
	req.Compression, req.CacheCompression = img.Compression, cacheCompression(img.Compression, r.cache.CacheMode)
	if len(img.Tags) > 0 && r.host != "" && !img.OutputsOnly {
		req.Tags = img.ImageRefs(r.host) // named even when not pushed: the metadata shows them
	}
	if img.PushByDigest && r.host != "" {
		req.PushByDigest, req.Repository = true, r.host+"/"+img.Repository
	}
	var err error
	if req.Outputs, err = r.outputs(ctx); err != nil {
		return built{req: req}, err
	}

	if leak, err := solve.LeaksGitCredentials(r.inputs.Context, r.inputs.Dockerfile); err != nil {
		r.a.Warningf("could not check the build context for git credentials: %s", ghout.Line(err.Error()))
	} else if leak {
		r.a.Warningf("the build context's .git/config holds a persisted credential (actions/checkout's extraheader) and .dockerignore does not exclude .git: " +
			"a COPY of the context would bake the token into the image; add .git to .dockerignore, or set persist-credentials: false on actions/checkout")
	}
	if plan.Export != "" {
		if plan.fingerprintErr != nil {
			r.a.Infof("could not fingerprint the build's inputs (%s): the cache is exported in the build's solve", ghout.Line(plan.fingerprintErr.Error()))
		}
		if !expectHits(plan) {
			req.CacheExport = plan.Export
		}
	}
	if r.beforeSolve != nil {
		if err := r.beforeSolve(ctx, plan.Export != "" && req.CacheExport == ""); err != nil {
			return built{req: req}, err
		}
	}
	r.a.Group("Build " + r.inputs.Dockerfile)
	b, err := r.attempt(ctx, req)
	if err != nil && len(req.CacheImports) > 0 && cacheMayBeAtFault(ctx, err) {
		imports := strings.Join(req.CacheImports, ", ")
		r.a.Infof("the build failed with the cache %s imported: building again without it", imports)
		req.CacheImports = nil
		if plan.Export != "" {
			req.CacheExport = plan.Export // nothing left to keep or tag
		}
		fallbacks := append(b.fallbacks, fallbackWithoutCache)
		b, err = r.attempt(ctx, req)
		b.fallbacks = append(fallbacks, b.fallbacks...)
		if err == nil {
			b.damaged = plan.imports
			r.a.Warningf("cache %s is damaged: the build failed with it and succeeded without it; %s", imports, repair(plan))
		}
	}
	r.a.EndGroup()
	if b.res != nil {
		for _, w := range b.res.Warnings {
			r.annotate(w.Location, "").Warningf("%s", w.Message)
		}
	}
	if err != nil {
		if ls := solve.ErrorLocations(err); len(ls) > 0 {
			r.annotate(&ls[0], "").Errorf("%s", err)
			return b, annotated{err}
		}
		return b, err
	}
	return b, nil
}

// cacheCompression is the compression of the layers only the cache holds:
// the compression input when set, else zstd for a max-mode cache, whose
// intermediate stages nothing but BuildKit reads back. zstd compresses several
// times faster than gzip (BENCHMARKS.md), and the image's layers stay the gzip
// blobs the image exporter made, shared with the cache.
func cacheCompression(c solve.Compression, mode solve.CacheMode) solve.Compression {
	if c.Type == "" && mode == solve.CacheModeMax {
		return solve.Compression{Type: "zstd"}
	}
	return c
}

// expectHits tells whether every step is expected to come from the one cache
// the build imports, so that its export is likely skipped (decideExport): the
// registry has every blob of that cache, and it was written from the inputs
// fingerprinted the same. Without a fingerprint there is no guess: the one
// solve exports, as a wrong guess would cost a second solve.
func expectHits(plan cachePlan) bool {
	i := soleCache(plan, plan.imports)
	return i >= 0 && plan.fingerprint != "" && plan.probed[i].Annotations[registry.InputsAnnotation] == plan.fingerprint
}

// cacheMayBeAtFault tells a failure a build without the cache might not have:
// not the run's end, nor a command of the build exiting non-zero, nor the
// registry refusing the image push (a denied push would fail again after a
// cold build), unless the push could not read content from the cache.
func cacheMayBeAtFault(ctx context.Context, err error) bool {
	switch {
	case ctx.Err() != nil || solve.CommandFailed(err):
		return false
	case errors.As(err, new(*solve.PushError)):
		return solve.ContentUnavailable(err)
	}
	return true
}

func repair(plan cachePlan) string {
	if plan.Export == "" {
		return "it stays as it is: this run exports no cache (" + plan.ExportReason + ")"
	}
	return "a new complete cache is exported to " + plan.Export
}

// attempt runs req's one solve, then pushes the image alone when that solve's
// push failed on a throttle, a 5xx or an upload race, or when its cache export
// timed out before the image was in the registry.
func (r *runner) attempt(ctx context.Context, req solve.Request) (built, error) {
	res, err := commandsStopped(r, func() (*solve.Result, error) { return solve.Build(ctx, r.solver, req, r.out) })
	b := built{req: req, res: res}
	switch {
	case err == nil && req.Push && res.Export != nil && res.Export.Err != nil && res.Export.Err.Kind == solve.ExportTimedOut:
		if r.imageArrived(ctx, b) {
			return b, nil
		}
		r.a.Infof("the cache export was stopped before the image reached the registry: pushing the image alone")
		b.fallbacks = append(b.fallbacks, fallbackImageAfterTimeout)
		return b, r.push(ctx, req, res, 0)
	case err == nil && res.Export != nil && res.Export.Err != nil && solve.UploadRace(res.Export.Err.Msg):
		r.a.Infof("the cache export lost an upload race to the image push (%s): exporting it alone", ghout.Line(res.Export.Err.Msg))
		res.Export = nil
		return b, nil
	case err == nil || ctx.Err() != nil || !errors.As(err, new(*solve.PushError)) || !solve.Retryable(err) || solve.ContentUnavailable(err):
		return b, err
	}
	// The cache export ran beside the failed push and was stopped with it.
	res.Export = nil
	b.fallbacks = append(b.fallbacks, fallbackImageRetry)
	return b, r.push(ctx, req, res, 1)
}

// imageArrived tells whether the image the build's progress says it pushed
// before its solve was stopped is the one the registry has.
func (r *runner) imageArrived(ctx context.Context, b built) bool {
	if !b.res.Pushed {
		return false
	}
	got, err := r.reg.Digest(ctx, b.pushedRef())
	b.res.Pushed = err == nil && got == b.res.Digest
	return b.res.Pushed
}

// push pushes the built image alone, after tried attempts (in the build's own
// solve), waiting before each new attempt after a 429, 5xx or upload race.
func (r *runner) push(ctx context.Context, req solve.Request, res *solve.Result, tried int) error {
	start := time.Now()
	for i := tried; ; i++ {
		if i > 0 {
			r.a.Infof("the registry throttled or failed the image push: trying again in %s", pushWaits[i-1])
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(pushWaits[i-1]):
			}
		}
		_, err := commandsStopped(r, func() (struct{}, error) { return struct{}{}, solve.Push(ctx, r.solver, req, res, r.out) })
		switch {
		case err == nil || ctx.Err() != nil || !solve.Retryable(err):
			return err
		case i == len(pushWaits):
			return &solve.PushError{Err: fmt.Errorf("%w (%d attempts over %s)", err, i+1, time.Since(start).Round(time.Second))}
		}
	}
}

// annotated is an error already shown as an annotation on the Dockerfile line
// it points at.
type annotated struct{ error }

func (e annotated) Unwrap() error { return e.error }

// Annotated reports whether Run already printed err as a workflow error
// annotation, so that the caller only sets the exit code: printed again, it
// would show twice.
func Annotated(err error) bool {
	var a annotated
	return errors.As(err, &a)
}

// allFallbacks are the fallbacks of the build and then of the export.
func (b built) allFallbacks(exp exported) []string {
	if exp.fallback {
		return append(slices.Clone(b.fallbacks), fallbackExportSolve)
	}
	return b.fallbacks
}

// pushedRef is the pushed image's reference: its first tag, or by digest for
// push-by-digest (the input, or an outputs type=image entry's attribute); ""
// when nothing was pushed.
func (b built) pushedRef() string {
	switch {
	case !b.req.Push:
		return ""
	case b.req.PushByDigest:
		return b.req.Repository + "@" + b.res.Digest
	case b.byDigest():
		return b.req.Tags[0] + "@" + b.res.Digest
	}
	return b.req.Tags[0]
}

// byDigest tells whether the image was pushed without its tags.
func (b built) byDigest() bool {
	on, _ := strconv.ParseBool(b.req.ImageAttrs["push-by-digest"])
	return b.req.PushByDigest || on
}

// request is what a build or a call asks of BuildKit, from the inputs: all
// but the image export and the cache. What the policy withholds (an untrusted
// run's secrets, ssh, entitlements and host network, unless granted) is left
// out, with a notice.
func (r *runner) request(policy cacheref.Decision) solve.Request {
	in := r.inputs
	req := solve.Request{
		ContextDir:     in.Context,
		Dockerfile:     in.Dockerfile,
		Target:         in.Target,
		BuildArgs:      in.BuildArgs,
		Labels:         in.Labels,
		NoCache:        in.NoCache,
		Platforms:      in.Platforms,
		Attests:        attests(in),
		Annotations:    in.Annotations,
		Secrets:        in.Secrets,
		SSH:            in.SSH,
		Contexts:       in.Contexts,
		Pull:           in.Pull,
		NoCacheFilters: in.NoCacheFilters,
		Entitlements:   in.Allow,
		Network:        in.Network,
		AddHosts:       in.AddHosts,
		ShmSize:        in.ShmSize,
		Ulimits:        in.Ulimits,
		CgroupParent:   in.CgroupParent,
		Insecure:       r.reg.Insecure,
		Session:        r.session,
	}
	if !policy.Secrets && (len(req.Secrets) > 0 || len(req.SSH) > 0) {
		r.a.Noticef("%s", policy.SecretsWithheld())
		req.Secrets, req.SSH = nil, nil
	}
	if !policy.Entitlements {
		var withheld []string
		if len(req.Entitlements) > 0 {
			withheld = append(withheld, "allow: "+strings.Join(req.Entitlements, ", "))
			req.Entitlements = nil
		}
		if req.Network == "host" {
			withheld = append(withheld, "network: host")
			req.Network = "" // the default, the builder's sandbox; network: none stays
		}
		if r.hostNetwork {
			withheld = append(withheld, "buildkit-host-network") // connectBuilder left it off
		}
		if len(withheld) > 0 {
			r.a.Noticef("%s", policy.EntitlementsWithheld(withheld))
		}
	}
	return req
}

// annotate points a workflow command at a Dockerfile line, so GitHub shows it
// on the file, under title when one is given; the frontend names the
// Dockerfile by its base name.
func (r *runner) annotate(l *solve.Location, title string) *githubactions.Action {
	fields := map[string]string{}
	if title != "" {
		fields["title"] = title
	}
	if l != nil {
		file := l.File
		if file == filepath.Base(r.inputs.Dockerfile) {
			file = r.inputs.Dockerfile
		}
		fields["file"], fields["line"] = file, strconv.Itoa(l.Line)
	}
	if len(fields) == 0 {
		return r.a
	}
	return r.a.WithFieldsMap(fields)
}

func attests(in config.Build) map[string]string {
	m := map[string]string{}
	if in.Provenance.On {
		m["provenance"] = in.Provenance.Opts
	}
	if in.SBOM.On {
		m["sbom"] = in.SBOM.Opts
	}
	return m
}

// commandsStopped runs f with workflow commands stopped: the build's output is the
// Dockerfile's to shape, and the runner must not act on any of it.
func commandsStopped[T any](r *runner, f func() (T, error)) (T, error) {
	if err := r.out.Begin(); err != nil {
		var zero T
		return zero, fmt.Errorf("stop workflow commands around the build: %w", err)
	}
	v, err := f()
	if endErr := r.out.End(); endErr != nil && err == nil {
		err = fmt.Errorf("resume workflow commands after the build: %w", endErr)
	}
	return v, err
}
