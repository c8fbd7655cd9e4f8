// Package run ties one action run together: read the inputs, decide the cache
// references, build on BuildKit, and report outputs and the job summary.
package run

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/moby/buildkit/session"
	"github.com/sethvargo/go-githubactions"

	"github.com/ecr-build-cache/ecr-build-cache/internal/build"
	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/config"
	"github.com/ecr-build-cache/ecr-build-cache/internal/registryauth"
)

// Run performs the action's main step. Build progress goes to out, which should
// be the writer a prints its workflow commands to.
func Run(ctx context.Context, a *githubactions.Action, out io.Writer) error {
	cfg, err := config.Read(a)
	if err != nil {
		return err
	}
	if cfg.Password != "" {
		a.AddMask(cfg.Password)
	}

	creds := registryauth.New(cfg.DockerConfigDir)
	if cfg.Username != "" {
		creds.Set(cfg.Registry, registryauth.Static(registryauth.Credentials{Username: cfg.Username, Password: cfg.Password}))
	}

	plan, err := cacheref.Derive(cfg.Event, cacheref.Options{
		Repository:    cfg.Registry + "/" + cfg.CacheRepository,
		Prefix:        cfg.CacheTagPrefix,
		Scope:         cfg.CacheScope,
		DefaultBranch: cfg.DefaultBranch,
		Export:        cfg.CacheExport,
		ExtraFrom:     cfg.CacheFrom,
	})
	if err != nil {
		return fmt.Errorf("derive cache references: %w", err)
	}
	push := cfg.Push
	if plan.Untrusted && push {
		push = false
		a.Noticef("untrusted event (%s from a fork or pull_request_target): the image is built but not pushed", cfg.Event.Name)
	}
	if plan.Export == "" {
		a.Infof("cache export: none (%s)", plan.ExportReason)
	} else {
		a.Infof("cache export: %s", plan.Export)
	}
	a.Infof("cache import, in priority order:\n  %s", strings.Join(plan.Imports, "\n  "))

	c, err := build.Connect(ctx, build.Endpoint{
		Addr: cfg.BuildkitHost, CACert: cfg.TLS.CACert, Cert: cfg.TLS.Cert, Key: cfg.TLS.Key, ServerName: cfg.TLS.ServerName,
	})
	if err != nil {
		return err
	}
	defer c.Close()

	req := build.Request{
		ContextDir:   cfg.Context,
		Dockerfile:   cfg.Dockerfile,
		Target:       cfg.Target,
		BuildArgs:    cfg.BuildArgs,
		Labels:       cfg.Labels,
		NoCache:      cfg.NoCache,
		Push:         push,
		CacheImports: plan.Imports,
		CacheExport:  plan.Export,
		CacheMode:    cfg.CacheMode,
		Session:      []session.Attachable{creds.Attachable()},
	}
	if push || len(cfg.Tags) > 0 {
		req.Tags = cfg.ImageRefs()
	}
	if cfg.Insecure {
		req.InsecureRegistry = cfg.Registry
	}

	a.Group("Build " + cfg.Dockerfile)
	res, err := build.Build(ctx, c, req, out)
	a.EndGroup()
	if err != nil {
		return err
	}
	if res.CacheExportErr != "" {
		a.Warningf("cache not saved to %s (the image is fine): %s", plan.Export, res.CacheExportErr)
	}
	return report(a, cfg, plan, req, res)
}
