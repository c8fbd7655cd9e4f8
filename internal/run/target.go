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
	"github.com/ecr-build-cache/ecr-build-cache/internal/githubapi"
	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
	"github.com/ecr-build-cache/ecr-build-cache/internal/registryauth"
)

// decidePolicy reads the event once: the run's policy, which says what the
// code this run builds may do (push, secrets, entitlements) and which cache
// keys it reads and writes. Every phase takes it from here; none recomputes it.
func decidePolicy(a *githubactions.Action, cfg *config.Config) (cacheref.Decision, error) {
	policy, err := cacheref.Decide(cfg.Event, cacheref.Options{
		Prefix:        cfg.CacheTagPrefix,
		Scope:         cfg.CacheScope,
		Platform:      cfg.SinglePlatform(),
		DefaultBranch: cfg.DefaultBranch,
		Export:        cfg.CacheExport,
		ExtraFrom:     cfg.CacheFrom,
		SkipMerged:    !cfg.CacheFromMerged,
		Grants:        cacheref.Grants{Push: cfg.UntrustedPush, Secrets: cfg.UntrustedSecrets, Entitlements: cfg.UntrustedEntitlements},
	})
	if err != nil {
		return policy, fmt.Errorf("derive cache references: %w", err)
	}
	for _, note := range policy.Notes {
		a.Warningf("%s", note)
	}
	return policy, nil
}

// githubQuestions are what the run asks the GitHub API (githubapi.Client):
// whether a policy's claim holds, and which pull requests a pushed commit
// merged.
type githubQuestions interface {
	BranchHead(ctx context.Context, repo, branch string) (string, error)
	MergedPulls(ctx context.Context, repo, sha string) ([]int, error)
}

// githubAPI is the client for the GitHub API (GITHUB_API_URL) with token
// (github-token), or nil without one.
func githubAPI(a *githubactions.Action, token string) (githubQuestions, error) {
	if token == "" {
		return nil, nil
	}
	c, err := githubapi.New(a.Getenv("GITHUB_API_URL"), token)
	if err != nil {
		return nil, fmt.Errorf("github-token: %w", err)
	}
	return c, nil
}

// proveClaim asks the GitHub API whether the commit built is the head of the
// branch the policy would write (workflow_run and check suites name a tag and
// a branch alike). Any doubt leaves the run reading only, with a notice that
// says how to let it write.
func proveClaim(ctx context.Context, a *githubactions.Action, api githubQuestions, policy cacheref.Decision) cacheref.Decision {
	c := policy.Claim
	if c.IsZero() {
		return policy
	}
	if why := disproof(ctx, api, a.Getenv("GITHUB_REPOSITORY"), c); why != "" {
		policy = policy.Prove(false, why)
		a.Noticef("%s", policy.Reason)
		return policy
	}
	a.Infof("%s %q: the GitHub API shows branch %s at %s, the commit built: its cache is written", c.What, c.Branch, c.Branch, c.SHA)
	return policy.Prove(true, "")
}

// disproof is why c is not proven, or "" when the API shows c.SHA at the
// head of branch c.Branch of repo.
func disproof(ctx context.Context, api githubQuestions, repo string, c cacheref.Claim) string {
	if api == nil {
		return "there is no github-token to ask the GitHub API; give github-token: ${{ github.token }} with permissions contents: read to let this run write its cache"
	}
	if c.SHA == "" {
		return "the payload names no commit"
	}
	sha, err := api.BranchHead(ctx, repo, c.Branch)
	switch {
	case errors.Is(err, githubapi.ErrNotFound):
		return fmt.Sprintf("%s has no branch %s that github-token can see: a tag of that name, a deleted branch, or a token without contents: read", repo, c.Branch)
	case err != nil:
		return fmt.Sprintf("the GitHub API did not say: %v; github-token needs contents: read", err)
	case sha != c.SHA:
		return fmt.Sprintf("branch %s is at %s, not at %s", c.Branch, sha, c.SHA)
	}
	return ""
}

// askMerged adds the pull requests the GitHub API says this push merged when
// its messages name none (a rebase merge), so their caches are imported too.
// The API is optional here: without a token, or on any error, the build
// reads the default branch's cache as before.
func askMerged(ctx context.Context, a *githubactions.Action, api githubQuestions, policy cacheref.Decision) cacheref.Decision {
	if policy.MergeCommit == "" {
		return policy
	}
	if api == nil {
		a.Infof("cache import: no github-token to ask which pull request commit %s merged (a rebase merge names none in its messages)", policy.MergeCommit)
		return policy
	}
	nums, err := api.MergedPulls(ctx, a.Getenv("GITHUB_REPOSITORY"), policy.MergeCommit)
	if err != nil {
		a.Noticef("could not ask the GitHub API which pull request this push merged, so its cache is not imported: %s", ghout.Line(err.Error()))
		return policy
	}
	return policy.WithMerged(nums)
}

// connectBuilder resolves and dials the BuildKit daemon.
func connectBuilder(ctx context.Context, a *githubactions.Action, cfg *config.Config, policy cacheref.Decision) (*client.Client, buildkitconn.Endpoint, error) {
	ep, err := buildkitconn.Resolve(ctx, buildkitconn.Options{
		Host: cfg.BuildkitHost, Builder: cfg.Builder, TLS: cfg.TLS, Getenv: a.Getenv,
		AllowInsecureTCP: cfg.BuildkitAllowInsecureTCP, HostNetwork: cfg.BuildkitHostNetwork && policy.Entitlements,
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
	if ep.Notice != "" {
		a.Noticef("%s", ep.Notice)
	}
	if ep.Warning != "" {
		a.Warningf("%s", ep.Warning)
	}
	if policy.Untrusted && ep.Container == "" {
		a.Warningf("%s, on a builder this action did not start (%s): untrusted code can poison a shared daemon's local cache and cache mounts; "+
			"give untrusted workflows an ephemeral builder (see docs/security-model.md)", policy.Reason, ep.Source)
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
func resolveTarget(ctx context.Context, a *githubactions.Action, cfg *config.Config, policy cacheref.Decision) (target, error) {
	t := target{host: cfg.Registry, insecure: cfg.Insecure, creds: registryauth.New(cfg.DockerConfigDir)}
	account, region, isECR := ecr.ParseHost(cfg.Registry)
	switch {
	case cfg.Registry != "" && !isECR:
		if cfg.Username != "" {
			t.creds.Set(cfg.Registry, registryauth.Static(registryauth.Credentials{Username: cfg.Username, Password: cfg.Password}))
		}
	default:
		err := t.loginECR(ctx, a, cfg, account, region)
		if policy.Untrusted && errors.Is(err, ecr.ErrNotConfigured) {
			a.Noticef("%s, and AWS is not configured (as usual for a fork): building without the registry: no image push, no cache import or export", policy.Reason)
			t.creds.Restrict()
			return target{creds: t.creds, client: registry.New(t.creds, "")}, nil
		}
		if err != nil {
			return target{}, err
		}
	}
	if policy.RestrictCredentials {
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

// checkImageTags refuses image tags among the cache's own, before anything is
// pushed: a tag taken from a fork's branch named cache-main-<hash> would
// otherwise overwrite main's cache.
func checkImageTags(cfg *config.Config, tgt target) error {
	if tgt.offline() {
		return nil
	}
	return cacheref.CheckImageTags(cfg.CacheTagPrefix, tgt.host+"/"+cfg.CacheRepository, cfg.ImageRefs(tgt.host))
}
