package run

import (
	"context"
	"errors"
	"fmt"

	"github.com/moby/buildkit/client"
	"github.com/sethvargo/go-githubactions"

	"github.com/ecr-build-cache/ecr-build-cache/internal/buildkitconn"
	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/config"
	"github.com/ecr-build-cache/ecr-build-cache/internal/ecr"
	"github.com/ecr-build-cache/ecr-build-cache/internal/ghout"
	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
	"github.com/ecr-build-cache/ecr-build-cache/internal/registryauth"
)

// decide reads the event once: whether the code this run builds may write
// anything, and which cache keys it reads and writes.
func decide(a *githubactions.Action, cfg *config.Config) (cacheref.Decision, error) {
	d, err := decision(cfg, cfg.SinglePlatform())
	if err != nil {
		return d, err
	}
	for _, note := range d.Notes {
		a.Warningf("%s", note)
	}
	return d, nil
}

// decision is the cache policy's decision for a build of platform ("" for
// several or unknown).
func decision(cfg *config.Config, platform string) (cacheref.Decision, error) {
	d, err := cacheref.Decide(cfg.Event, cacheref.Options{
		Prefix:        cfg.CacheTagPrefix,
		Scope:         cfg.CacheScope,
		Platform:      platform,
		DefaultBranch: cfg.DefaultBranch,
		Export:        cfg.CacheExport,
		ExtraFrom:     cfg.CacheFrom,
	})
	if err != nil {
		return d, fmt.Errorf("derive cache references: %w", err)
	}
	return d, nil
}

// connectBuilder resolves and dials the BuildKit daemon.
func connectBuilder(ctx context.Context, a *githubactions.Action, cfg *config.Config, tr cacheref.Decision) (*client.Client, buildkitconn.Endpoint, error) {
	ep, err := buildkitconn.Resolve(ctx, buildkitconn.Options{
		Host: cfg.BuildkitHost, Builder: cfg.Builder, TLS: cfg.TLS, Getenv: a.Getenv,
		AllowInsecureTCP: cfg.BuildkitAllowInsecureTCP, HostNetwork: cfg.BuildkitHostNetwork,
		Daemon: cfg.Daemon, Platforms: cfg.Platforms,
		// Saved before it exists, so the post step removes it whatever happens next.
		Starting: func(name string) error {
			if err := ghout.SaveState(a, buildkitconn.StateContainer, name); err != nil {
				return fmt.Errorf("save the BuildKit container's name for the post step: %w", err)
			}
			return nil
		},
	})
	if err != nil {
		return nil, ep, err
	}
	a.Infof("BuildKit: %s (from %s)", ep.Addr, ep.Source)
	if tr.Untrusted && ep.Container == "" {
		a.Warningf("%s, on a builder this action did not start (%s): untrusted code can poison a shared daemon's local cache and cache mounts; "+
			"give untrusted workflows an ephemeral builder (see the README's security model)", tr.Reason, ep.Source)
	}
	c, err := buildkitconn.Connect(ctx, ep)
	return c, ep, err
}

// target is where this run pushes and reads its cache, with the credentials for it.
type target struct {
	host     string // registry host[:port]; "" when offline
	insecure bool
	ecr      *ecr.Client // nil for a non-ECR registry
	account  string      // the ECR registry's account, when the host names it
	creds    *registryauth.Store
	client   *registry.Client
}

// offline is an untrusted run without registry credentials (a fork's pull
// request has no AWS secrets): it builds without the registry.
func (t target) offline() bool { return t.host == "" }

// resolveTarget logs in: ECR (registry empty or an ECR host) through the AWS
// SDK, any other host through the username/password inputs or the docker config.
func resolveTarget(ctx context.Context, a *githubactions.Action, cfg *config.Config, tr cacheref.Decision) (target, error) {
	t := target{host: cfg.Registry, insecure: cfg.Insecure, creds: registryauth.New(cfg.DockerConfigDir)}
	account, region, isECR := ecr.ParseHost(cfg.Registry)
	switch {
	case cfg.Registry != "" && !isECR:
		if cfg.Username != "" {
			t.creds.Set(cfg.Registry, registryauth.Static(registryauth.Credentials{Username: cfg.Username, Password: cfg.Password}))
		}
	default:
		err := t.loginECR(ctx, a, cfg, account, region)
		if tr.Untrusted && errors.Is(err, ecr.ErrNotConfigured) {
			a.Noticef("%s, and AWS is not configured (as usual for a fork): building without the registry: no image push, no cache import or export", tr.Reason)
			t.creds.Restrict()
			return target{creds: t.creds, client: registry.New(t.creds, "")}, nil
		}
		if err != nil {
			return target{}, err
		}
	}
	if tr.Untrusted {
		t.creds.Restrict(t.host)
	}
	insecureHost := ""
	if t.insecure {
		insecureHost = t.host
	}
	t.client = registry.New(t.creds, insecureHost)
	return t, nil
}

func (t *target) loginECR(ctx context.Context, a *githubactions.Action, cfg *config.Config, account, region string) error {
	if region == "" {
		region = cfg.AWSRegion
	}
	awsCfg, err := ecr.LoadConfig(ctx, region)
	if err != nil {
		return err
	}
	t.ecr = ecr.NewFromConfig(awsCfg, a.AddMask, func(msg string) { a.Warningf("%s", msg) })
	tok, err := t.ecr.Token(ctx)
	if err != nil {
		return err
	}
	t.account = account
	if t.host == "" {
		t.host, t.insecure = tok.Registry, tok.Insecure
	}
	t.creds.Set(t.host, t.ecr.Source())
	a.Infof("logged in to ECR registry %s (token valid until %s)", t.host, tok.ExpiresAt.UTC().Format("15:04 MST"))
	return nil
}

// checkCacheRepository fails before building when ECR would reject the cache
// export: an immutable repository takes a cache tag only once.
func (t target) checkCacheRepository(ctx context.Context, a *githubactions.Action, repository string, plan cacheref.Plan) error {
	if t.ecr == nil || plan.Export == "" {
		return nil
	}
	err := t.ecr.CheckTagOverwrite(ctx, t.account, repository, plan.ExportTag)
	// The check only saves a confusing failure later: without it the build goes on.
	if errors.Is(err, ecr.ErrNoPermission) || errors.Is(err, ecr.ErrUnavailable) {
		a.Warningf("could not check whether %s allows overwriting cache tags: %v", repository, err)
		return nil
	}
	return err
}
