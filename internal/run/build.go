package run

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sethvargo/go-githubactions"

	"github.com/ecr-build-cache/ecr-build-cache/internal/build"
	"github.com/ecr-build-cache/ecr-build-cache/internal/config"
	"github.com/ecr-build-cache/ecr-build-cache/internal/ghout"
)

// built is the build phase's result, with the request it ran.
type built struct {
	req build.Request
	res *build.Result
	// damaged are the imports of a first attempt that failed where the same
	// build without them succeeded: req imports nothing then.
	damaged []string
}

// pushTimeout bounds one image push: far above a healthy push of a large image,
// it only stops a registry that stopped answering (BuildKit would wait forever).
const pushTimeout = 30 * time.Minute

// pushWaits are the waits before each new image push attempt after a 429 or
// 5xx. BuildKit does not show the registry's Retry-After, so a bounded backoff
// stands in for it: 30 s in all.
var pushWaits = []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second}

// build runs the Dockerfile build and pushes the image when the plan says so.
// A build that fails with a cache imported is tried once more without it: a
// registry may have lost a blob of the cache since the probe, or the cache may
// be broken in a way no check sees; a cache must never make a build fail.
func (r *runner) build(ctx context.Context, plan cachePlan) (built, error) {
	cfg := r.cfg
	req := r.request(plan.Untrusted, plan.why)
	req.Push = plan.push
	req.PushTimeout = pushTimeout
	req.ImageAttrs = cfg.ImageAttrs
	req.CacheImports = plan.imports
	req.CacheExport = plan.Export
	req.CacheMode = cfg.CacheMode
	req.CacheExportTimeout = cfg.CacheExportTimeout
	req.Compression = cfg.Compression
	if len(cfg.Tags) > 0 && r.host != "" && !cfg.OutputsOnly {
		req.Tags = cfg.ImageRefs(r.host) // named even when not pushed: the metadata shows them
	}
	if cfg.PushByDigest && r.host != "" {
		req.PushByDigest, req.Repository = true, r.host+"/"+cfg.Repository
	}
	var err error
	if req.Outputs, err = r.outputs(ctx); err != nil {
		return built{req: req}, err
	}

	if leak, err := build.LeaksGitCredentials(cfg.Context, cfg.Dockerfile); err != nil {
		r.a.Warningf("could not check the build context for git credentials: %s", ghout.Line(err.Error()))
	} else if leak {
		r.a.Warningf("the build context's .git/config holds a persisted credential (actions/checkout's extraheader) and .dockerignore does not exclude .git: " +
			"a COPY of the context would bake the token into the image; add .git to .dockerignore, or set persist-credentials: false on actions/checkout")
	}
	r.a.Group("Build " + cfg.Dockerfile)
	b, err := r.attempt(ctx, req)
	if err != nil && len(req.CacheImports) > 0 && cacheMayBeAtFault(ctx, err) {
		imports := strings.Join(req.CacheImports, ", ")
		r.a.Infof("the build failed with the cache %s imported: building again without it", imports)
		req.CacheImports = nil
		b, err = r.attempt(ctx, req)
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
		if ls := build.ErrorLocations(err); len(ls) > 0 {
			r.annotate(&ls[0], "").Errorf("%s", err)
			return b, annotated{err}
		}
		return b, err
	}
	return b, nil
}

// cacheMayBeAtFault tells a failure a build without the cache might not have:
// not the run's end, nor a command of the build exiting non-zero, nor the
// registry refusing the image push (a denied push would fail again after a
// cold build), unless the push could not read content from the cache.
func cacheMayBeAtFault(ctx context.Context, err error) bool {
	switch {
	case ctx.Err() != nil || build.CommandFailed(err):
		return false
	case errors.As(err, new(pushError)):
		return build.ContentUnavailable(err)
	}
	return true
}

func repair(plan cachePlan) string {
	if plan.Export == "" {
		return "it stays as it is: this run exports no cache (" + plan.ExportReason + ")"
	}
	return "a new complete cache is exported to " + plan.Export
}

// attempt builds, then pushes the image when req says so.
func (r *runner) attempt(ctx context.Context, req build.Request) (built, error) {
	res, err := untrusted(r, func() (*build.Result, error) { return build.Build(ctx, r.solver, req, r.out) })
	b := built{req: req, res: res}
	if err != nil || !req.Push {
		return b, err
	}
	return b, r.push(ctx, req, res)
}

// pushError is a failed image push.
type pushError struct{ error }

func (e pushError) Unwrap() error { return e.error }

// push pushes the built image, trying again after a 429 or 5xx.
func (r *runner) push(ctx context.Context, req build.Request, res *build.Result) error {
	start := time.Now()
	for i := 0; ; i++ {
		_, err := untrusted(r, func() (struct{}, error) { return struct{}{}, build.Push(ctx, r.solver, req, res, r.out) })
		switch {
		case err == nil || ctx.Err() != nil:
			return err
		case !build.Retryable(err):
			return pushError{err}
		case i == len(pushWaits):
			return pushError{fmt.Errorf("%w (%d attempts over %s)", err, i+1, time.Since(start).Round(time.Second))}
		}
		r.a.Infof("the registry throttled or failed the image push: trying again in %s", pushWaits[i])
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pushWaits[i]):
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
// but the image export and the cache. An untrusted run gets no secrets or ssh
// unless untrusted-secrets allows them.
func (r *runner) request(untrusted bool, why string) build.Request {
	cfg := r.cfg
	req := build.Request{
		ContextDir:     cfg.Context,
		Dockerfile:     cfg.Dockerfile,
		Target:         cfg.Target,
		BuildArgs:      cfg.BuildArgs,
		Labels:         cfg.Labels,
		NoCache:        cfg.NoCache,
		Platforms:      cfg.Platforms,
		Attests:        attests(cfg),
		Annotations:    cfg.Annotations,
		Secrets:        cfg.Secrets,
		SSH:            cfg.SSH,
		Contexts:       cfg.Contexts,
		Pull:           cfg.Pull,
		NoCacheFilters: cfg.NoCacheFilters,
		Entitlements:   cfg.Allow,
		Network:        cfg.Network,
		AddHosts:       cfg.AddHosts,
		ShmSize:        cfg.ShmSize,
		Ulimits:        cfg.Ulimits,
		CgroupParent:   cfg.CgroupParent,
		Insecure:       r.reg.Insecure,
		Session:        r.session,
	}
	if untrusted && (len(req.Secrets) > 0 || len(req.SSH) > 0) && !cfg.UntrustedSecrets {
		r.a.Noticef("%s: secrets, secret-files, secret-envs, github-token and ssh are withheld from this build (set untrusted-secrets: true to pass them)", why)
		req.Secrets, req.SSH = nil, nil
	}
	return req
}

// annotate points a workflow command at a Dockerfile line, so GitHub shows it
// on the file, under title when one is given; the frontend names the
// Dockerfile by its base name.
func (r *runner) annotate(l *build.Location, title string) *githubactions.Action {
	fields := map[string]string{}
	if title != "" {
		fields["title"] = title
	}
	if l != nil {
		file := l.File
		if file == filepath.Base(r.cfg.Dockerfile) {
			file = r.cfg.Dockerfile
		}
		fields["file"], fields["line"] = file, strconv.Itoa(l.Line)
	}
	if len(fields) == 0 {
		return r.a
	}
	return r.a.WithFieldsMap(fields)
}

func attests(cfg *config.Config) map[string]string {
	m := map[string]string{}
	if cfg.Provenance.On {
		m["provenance"] = cfg.Provenance.Opts
	}
	if cfg.SBOM.On {
		m["sbom"] = cfg.SBOM.Opts
	}
	return m
}

// untrusted runs f with workflow commands stopped: the build's output is the
// Dockerfile's to shape, and the runner must not act on any of it.
func untrusted[T any](r *runner, f func() (T, error)) (T, error) {
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
