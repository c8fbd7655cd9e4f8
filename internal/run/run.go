// Package run ties one action run together: read the inputs, log in to the
// registry (ECR or another), decide and probe the cache references, build on
// BuildKit, and report outputs and the job summary.
package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/buildkit/session"
	"github.com/sethvargo/go-githubactions"

	"github.com/ecr-build-cache/ecr-build-cache/internal/build"
	"github.com/ecr-build-cache/ecr-build-cache/internal/buildkitconn"
	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/config"
	"github.com/ecr-build-cache/ecr-build-cache/internal/ecr"
	"github.com/ecr-build-cache/ecr-build-cache/internal/probe"
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
	for _, v := range cfg.SecretValues() {
		a.AddMask(v)
	}
	decision, err := cacheref.Decide(cfg.Event, cacheref.Options{
		Prefix:        cfg.CacheTagPrefix,
		Scope:         cfg.CacheScope,
		DefaultBranch: cfg.DefaultBranch,
		Export:        cfg.CacheExport,
		ExtraFrom:     cfg.CacheFrom,
	})
	if err != nil {
		return fmt.Errorf("derive cache references: %w", err)
	}
	for _, note := range decision.Notes {
		a.Warningf("%s", note)
	}
	untrusted, why := decision.Untrusted, decision.Reason

	// The builder first: a wrong address fails before any registry or ECR call.
	ep, err := buildkitconn.Resolve(ctx, buildkitconn.Options{Host: cfg.BuildkitHost, Builder: cfg.Builder, TLS: cfg.TLS, Getenv: a.Getenv})
	if err != nil {
		return err
	}
	if ep.Container != "" {
		// Saved before connecting, so the post step removes it whatever happens next.
		a.SaveState(buildkitconn.StateContainer, ep.Container)
	}
	a.Infof("BuildKit: %s (from %s)", ep.Addr, ep.Source)
	c, err := build.Connect(ctx, ep.Endpoint)
	if err != nil {
		return err
	}
	defer c.Close()

	creds := registryauth.New(cfg.DockerConfigDir)
	reg, err := login(ctx, a, cfg, creds)
	offline := untrusted && errors.Is(err, ecr.ErrNotConfigured)
	if err != nil && !offline {
		return err
	}

	var plan cacheref.Plan
	if offline {
		plan, _ = decision.Plan("") // the offline plan cannot fail
		a.Noticef("%s, and AWS is not configured (as usual for a fork): building without the registry: no image push, no cache import or export", why)
	} else {
		plan, err = decision.Plan(reg.host + "/" + cfg.CacheRepository)
		if err != nil {
			return fmt.Errorf("derive cache references: %w", err)
		}
		if plan.Untrusted && cfg.Push {
			a.Noticef("%s: the image is built but not pushed", why)
		}
		if err := checkCacheRepository(ctx, a, cfg, reg, plan); err != nil {
			return err
		}
	}
	if plan.Export == "" {
		a.Infof("cache export: none (%s)", plan.ExportReason)
	} else {
		a.Infof("cache export: %s", plan.Export)
	}

	prober := probe.Registry{Keychain: creds}
	if reg.insecure {
		prober.InsecureHost = reg.host
	}
	probed := prober.Refs(ctx, plan.Imports)
	imports := probe.Importable(probed)
	for _, p := range probed {
		switch {
		case p.Err != nil:
			a.Warningf("cache ref %s could not be checked, importing it anyway: %v", p.Ref, p.Err)
		case slices.Contains(imports, p.Ref):
			a.Infof("cache import: %s (found, importing)", p.Ref)
		case p.Exists:
			a.Infof("cache import: %s (found, not needed: a higher-priority cache is imported)", p.Ref)
		default:
			a.Infof("cache import: %s (not found)", p.Ref)
		}
	}
	if len(probed) > 0 && len(imports) == 0 {
		a.Warningf("no cache found (looked for %s): this build runs cold", strings.Join(plan.Imports, ", "))
	}

	push := cfg.Push && !plan.Untrusted
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
		Push:               push,
		CacheImports:       imports,
		CacheExport:        plan.Export,
		CacheMode:          cfg.CacheMode,
		CacheExportTimeout: cfg.CacheExportTimeout,
		Session:            []session.Attachable{creds.Attachable()},
	}
	if push || (len(cfg.Tags) > 0 && reg.host != "") {
		req.Tags = cfg.ImageRefs(reg.host)
	}
	if reg.insecure {
		req.InsecureRegistry = reg.host
	}

	a.Group("Build " + cfg.Dockerfile)
	res, err := build.Build(ctx, c, req, out)
	if res != nil {
		for _, w := range res.Warnings {
			annotate(a, cfg, w.Location).Warningf("%s", w.Message)
		}
	}
	if err != nil {
		a.EndGroup()
		for _, l := range build.ErrorLocations(err) {
			annotate(a, cfg, &l).Errorf("%s", err)
		}
		return err
	}
	exportNote, err := exportCache(ctx, a, c, prober, req, probed, res, out)
	a.EndGroup()
	if err != nil {
		return err
	}
	if res.CacheExportErr != "" {
		a.Warningf("cache not saved to %s (the image is fine): %s", plan.Export, res.CacheExportErr)
	}

	o := outcome{cfg: cfg, plan: plan, req: req, res: res, probed: probed, exportNote: exportNote}
	if built := builtRef(req, plan, res); built != "" && len(req.CacheImports) > 0 {
		if o.hitRef, err = prober.Served(ctx, probed, built); err != nil {
			a.Warningf("could not tell which cache served the build: %v", err)
		}
	}
	return o.report(a)
}

// annotate points a workflow command at a Dockerfile line, so GitHub shows it
// on the file; the frontend names the Dockerfile by its base name.
func annotate(a *githubactions.Action, cfg *config.Config, l *build.Location) *githubactions.Action {
	if l == nil {
		return a
	}
	file := l.File
	if file == filepath.Base(cfg.Dockerfile) {
		file = cfg.Dockerfile
	}
	return a.WithFieldsMap(map[string]string{"file": file, "line": strconv.Itoa(l.Line)})
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

// exportCache writes req.CacheExport unless the cache it would write is already in
// the registry: when every step came from the one imported cache, that cache is
// kept as it is (same tag) or tagged again (a new branch's first build). It
// returns a note saying which, "" after a real export.
func exportCache(ctx context.Context, a *githubactions.Action, c build.Solver, prober probe.Registry, req build.Request, probed []probe.Ref, res *build.Result, out io.Writer) (string, error) {
	if req.CacheExport == "" {
		return "", nil
	}
	if len(res.Steps) > 0 && res.CachedSteps() == len(res.Steps) && len(req.CacheImports) == 1 {
		i := slices.IndexFunc(probed, func(p probe.Ref) bool { return p.Ref == req.CacheImports[0] && p.Exists })
		switch {
		case i < 0:
		case probed[i].Ref == req.CacheExport:
			a.Infof("cache export: skipped, every step came from %s, which stays as it is", req.CacheExport)
			return "unchanged: every step came from it", nil
		default:
			err := prober.Copy(ctx, probed[i], req.CacheExport)
			if err == nil {
				a.Infof("cache export: %s tagged from %s, which served every step", req.CacheExport, probed[i].Ref)
				return "tagged from `" + probed[i].Ref + "`, which served every step", nil
			}
			a.Infof("cache export: could not tag %s from %s (%v); exporting instead", req.CacheExport, probed[i].Ref, err)
		}
	}
	return "", build.ExportCache(ctx, c, req, out, res)
}

// builtRef is a manifest this run pushed whose layers show where cache hits came
// from: the image, else the cache it exported.
func builtRef(req build.Request, plan cacheref.Plan, res *build.Result) string {
	switch {
	case req.Push && len(req.Tags) > 0:
		return req.Tags[0]
	case plan.Export != "" && res.CacheExportErr == "":
		return plan.Export
	}
	return ""
}

// registry is where this run pushes and reads its cache.
type registry struct {
	host     string
	insecure bool
	ecr      *ecr.Client // nil for a non-ECR registry
	account  string      // the ECR registry's account, when the host names it
}

// login resolves the registry and registers its credentials in creds: ECR
// (registry empty or an ECR host) through the AWS SDK, any other host through the
// username/password inputs or the docker config.
func login(ctx context.Context, a *githubactions.Action, cfg *config.Config, creds *registryauth.Store) (registry, error) {
	account, region, isECR := ecr.ParseHost(cfg.Registry)
	if cfg.Registry != "" && !isECR {
		if cfg.Username != "" {
			creds.Set(cfg.Registry, registryauth.Static(registryauth.Credentials{Username: cfg.Username, Password: cfg.Password}))
		}
		return registry{host: cfg.Registry, insecure: cfg.Insecure}, nil
	}
	if region == "" {
		region = cfg.AWSRegion
	}
	awsCfg, err := ecr.LoadConfig(ctx, region)
	if err != nil {
		return registry{}, err
	}
	client := ecr.NewFromConfig(awsCfg, a.AddMask)
	tok, err := client.Token(ctx)
	if err != nil {
		return registry{}, err
	}
	reg := registry{host: cfg.Registry, insecure: cfg.Insecure, ecr: client, account: account}
	if reg.host == "" {
		reg.host, reg.insecure = tok.Registry, tok.Insecure
	}
	creds.Set(reg.host, client.Source())
	a.Infof("logged in to ECR registry %s (token valid until %s)", reg.host, tok.ExpiresAt.UTC().Format("15:04 MST"))
	return reg, nil
}

// checkCacheRepository fails before building when ECR would reject the cache
// export: an immutable repository takes a cache tag only once.
func checkCacheRepository(ctx context.Context, a *githubactions.Action, cfg *config.Config, reg registry, plan cacheref.Plan) error {
	if reg.ecr == nil || plan.Export == "" {
		return nil
	}
	err := reg.ecr.CheckTagOverwrite(ctx, reg.account, cfg.CacheRepository, plan.ExportTag)
	// The check only saves a confusing failure later: without it the build goes on.
	if errors.Is(err, ecr.ErrNoPermission) || errors.Is(err, ecr.ErrUnavailable) {
		a.Warningf("could not check whether %s allows overwriting cache tags: %v", cfg.CacheRepository, err)
		return nil
	}
	return err
}
