package run

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/sethvargo/go-githubactions"

	"github.com/ecr-build-cache/ecr-build-cache/internal/build"
	"github.com/ecr-build-cache/ecr-build-cache/internal/config"
	"github.com/ecr-build-cache/ecr-build-cache/internal/ghout"
)

// built is the build phase's result, with the request it ran.
type built struct {
	req build.Request
	res *build.Result
}

// build runs the Dockerfile build and pushes the image when the plan says so.
func (r *runner) build(ctx context.Context, plan cachePlan) (built, error) {
	cfg := r.cfg
	req := build.Request{
		ContextDir:         cfg.Context,
		Dockerfile:         cfg.Dockerfile,
		Target:             cfg.Target,
		BuildArgs:          cfg.BuildArgs,
		Labels:             cfg.Labels,
		NoCache:            cfg.NoCache,
		Platforms:          cfg.Platforms,
		Attests:            attests(cfg),
		Annotations:        cfg.Annotations,
		Secrets:            cfg.Secrets,
		Push:               plan.push,
		CacheImports:       plan.imports,
		CacheExport:        plan.Export,
		CacheMode:          build.CacheMode(cfg.CacheMode),
		CacheExportTimeout: cfg.CacheExportTimeout,
		Insecure:           r.reg.Insecure,
		Session:            r.session,
	}
	if plan.Untrusted && len(req.Secrets) > 0 && !cfg.UntrustedSecrets {
		r.a.Noticef("%s: secrets and secret-files are withheld from this build (set untrusted-secrets: true to pass them)", plan.why)
		req.Secrets = nil
	}
	if len(cfg.Tags) > 0 && r.host != "" {
		req.Tags = cfg.ImageRefs(r.host) // named even when not pushed: the metadata shows them
	}
	if cfg.PushByDigest && r.host != "" {
		req.PushByDigest, req.Repository = true, r.host+"/"+cfg.Repository
	}

	if leak, err := build.LeaksGitCredentials(cfg.Context, cfg.Dockerfile); err != nil {
		r.a.Warningf("could not check the build context for git credentials: %s", ghout.Line(err.Error()))
	} else if leak {
		r.a.Warningf("the build context's .git/config holds a persisted credential (actions/checkout's extraheader) and .dockerignore does not exclude .git: " +
			"a COPY of the context would bake the token into the image; add .git to .dockerignore, or set persist-credentials: false on actions/checkout")
	}
	r.a.Group("Build " + cfg.Dockerfile)
	res, err := untrusted(r, func() (*build.Result, error) { return build.Build(ctx, r.solver, req, r.out) })
	r.a.EndGroup()
	b := built{req: req, res: res}
	if res != nil {
		for _, w := range res.Warnings {
			r.annotate(w.Location).Warningf("%s", w.Message)
		}
	}
	if err != nil {
		for _, l := range build.ErrorLocations(err) {
			r.annotate(&l).Errorf("%s", err)
		}
		return b, err
	}
	return b, nil
}

// pushedRef is the pushed image's reference: its first tag, or by digest for
// push-by-digest; "" when nothing was pushed.
func (b built) pushedRef() string {
	switch {
	case !b.req.Push:
		return ""
	case b.req.PushByDigest:
		return b.req.Repository + "@" + b.res.Digest
	}
	return b.req.Tags[0]
}

// annotate points a workflow command at a Dockerfile line, so GitHub shows it
// on the file; the frontend names the Dockerfile by its base name.
func (r *runner) annotate(l *build.Location) *githubactions.Action {
	if l == nil {
		return r.a
	}
	file := l.File
	if file == filepath.Base(r.cfg.Dockerfile) {
		file = r.cfg.Dockerfile
	}
	return r.a.WithFieldsMap(map[string]string{"file": file, "line": strconv.Itoa(l.Line)})
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
