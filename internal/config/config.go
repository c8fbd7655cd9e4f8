// Package config reads the action's inputs and the GitHub context once, into a
// typed Config, and validates all of it up front: every problem is reported in
// one error, before anything is built or pushed.
package config

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/sethvargo/go-githubactions"

	"github.com/ecr-build-cache/ecr-build-cache/internal/buildkitconn"
	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/ecr"
	"github.com/ecr-build-cache/ecr-build-cache/internal/solve"
)

// Config is everything one run needs to know, validated. The phases after the
// target get only their slice of it: Image (where the image goes), Build (what
// BuildKit is asked) and Cache (the cache's keys and limits).
type Config struct {
	Image
	// Registry is the registry host[:port]; empty means "from the ECR token".
	Registry string
	// AWSRegion is the aws-region input, else AWS_REGION / AWS_DEFAULT_REGION.
	AWSRegion string
	// Insecure is set when the registry input starts with http://.
	Insecure bool

	// Merge is a merge run (merge-digests or merge-platforms given): it builds
	// nothing and pushes an image index of manifests already pushed.
	Merge bool
	// MergeDigests are the manifests to merge as given: sha256:... or repository@sha256:...
	MergeDigests []string
	// MergePlatforms are the platforms (normalized) whose push-by-digest images,
	// staged by this workflow run, to merge.
	MergePlatforms []string

	Build
	Call *solve.Call // nil: build
	// Daemon configures the BuildKit container the action starts.
	Daemon buildkitconn.Daemon

	Cache

	Username, Password string

	// BuildkitHost and Builder are the inputs as given; buildkitconn falls back
	// to BUILDKIT_HOST and a Docker engine.
	BuildkitHost string
	Builder      string
	TLS          buildkitconn.TLS
	// BuildkitAllowInsecureTCP allows a tcp:// buildkitd without TLS at a
	// non-loopback address (buildkit-allow-insecure-tcp).
	BuildkitAllowInsecureTCP bool
	// BuildkitHostNetwork runs a BuildKit container the action starts on the
	// runner's network (buildkit-host-network).
	BuildkitHostNetwork bool

	// UntrustedPush pushes the image even when the run is untrusted (the cache
	// is still never written); UntrustedSecrets passes secrets to such a build,
	// UntrustedEntitlements allow, network: host and buildkit-host-network.
	UntrustedPush, UntrustedSecrets, UntrustedEntitlements bool

	// GitHubToken is the github-token input: besides the build's git secret,
	// it asks the GitHub API what the event payload cannot prove.
	GitHubToken string

	// Cleanup is set when this run deletes the cache tags of a deleted branch
	// or a closed pull request instead of building (cache-cleanup and the
	// event); CleanupScopes are the cache scopes it tries besides those it
	// reads back from tag names (cache-cleanup-scopes).
	Cleanup       bool
	CleanupScopes []string

	Event cacheref.Event
	// DockerConfigDir is $DOCKER_CONFIG, where docker/login-action leaves credentials.
	DockerConfigDir string
}

// Image is where the built image goes: its repository and tags, the push, and
// the other outputs.
type Image struct {
	Repository string   // image repository path, lowercase, e.g. "team/app"
	Tags       []string // as given: bare tags or full references
	Push       bool
	// PushByDigest pushes the image by digest only, without tags (push-by-digest).
	PushByDigest bool
	// OutputsOnly is set when outputs has no type=image entry and push is
	// false: the image goes to the outputs only, not to an image export.
	OutputsOnly bool
	// ImageAttrs are the outputs input's type=image entry's further exporter
	// attributes (push-by-digest, name-canonical, ...).
	ImageAttrs map[string]string
	Outputs    []solve.Output // the other outputs (local, tar, oci, docker with dest)
	Load       bool           // load the image into the runner's Docker engine
	// Compression compresses the built layers, in the image and the cache.
	Compression solve.Compression
}

// Build is what the build asks BuildKit, besides the image export and the
// cache: docker/build-push-action's build inputs.
type Build struct {
	Context    string
	Dockerfile string
	BuildArgs  map[string]string
	Labels     map[string]string
	Platforms  []string
	// Annotations are image exporter attributes (annotation.KEY, annotation-index.KEY, ...).
	Annotations map[string]string
	// Secrets are build secrets by id, in memory only: from the secrets input's
	// values and the secret-files input's file contents.
	Secrets    map[string][]byte
	Provenance Attestation
	SBOM       Attestation
	Target     string
	NoCache    bool

	// The rest of docker/build-push-action's inputs (buildopts.go).
	SSH            []solve.SSH
	Contexts       map[string]string // build-contexts, by name
	Pull           bool
	NoCacheFilters []string
	Allow          []string // entitlements
	Network        string   // "", "host" or "none"
	AddHosts       []string // host=ip
	ShmSize        int64
	Ulimits        []string
	CgroupParent   string
}

// Cache is what the cache's keys are made of, and its limits.
type Cache struct {
	CacheRepository string
	CacheTagPrefix  string
	CacheScope      string
	CacheMode       solve.CacheMode
	CacheExport     cacheref.ExportMode
	// CacheExportTimeout bounds a hung cache export (the image stands).
	CacheExportTimeout time.Duration
	CacheFrom          []string
	// CacheFromMerged imports, on the default branch and in a merge queue, the
	// caches of the pull requests the build's commit merged (cache-from-merged).
	CacheFromMerged bool
	DefaultBranch   string
	// CacheMounts is the cache-mounts input: nil for none, ["auto"], or mount
	// ids or targets; CacheMountsMaxSize the largest mount saved, in bytes.
	CacheMounts        []string
	CacheMountsMaxSize int64
	// CacheMountsSharedBuilder names the mounts saved even from a builder the
	// action did not start (cache-mounts-shared-builder).
	CacheMountsSharedBuilder []string
	// CacheRefreshAfter is the age (cache-refresh-days) past which a cache tag
	// ECR dates by its first push is put again when its export is skipped; 0
	// never.
	CacheRefreshAfter time.Duration
}

// problems collects validation errors so that all of them are reported at once.
type problems []error

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Errorf(format, args...)) }

var (
	anchoredTag  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	anchoredHost = regexp.MustCompile(`^` + reference.DomainRegexp.String() + `$`)
)

// Read reads and validates every input. Relative paths are resolved against the
// workspace (the working directory, as on a runner). Secret text (the secrets
// and password inputs, the secret-files' contents) is masked line by line before
// it is parsed. environ is the run's environment (os.Environ() on a runner):
// every INPUT_* variable in it that names no input of this action is a problem;
// nil skips that check.
func Read(a *githubactions.Action, environ []string) (*Config, error) {
	var p problems
	m := &masker{a: a}
	in := func(name string) string { return input(a.GetInput, name) }
	m.mask(in("password"))
	boolean := func(name string) bool {
		v := in(name)
		b, err := strconv.ParseBool(v)
		if err != nil {
			p.add("%s: %q is not a boolean; use true or false", name, v)
		}
		return b
	}
	list := func(name string, commas bool) []string {
		l, err := List(in(name), commas)
		if err != nil {
			p.add("%s: %w", name, err)
		}
		return l
	}

	c := &Config{
		Image: Image{
			Repository:   in("repository"),
			Tags:         list("tags", true),
			Push:         boolean("push"),
			PushByDigest: boolean("push-by-digest"),
		},
		Build: Build{
			Context: in("context"),
			Target:  in("target"),
			NoCache: boolean("no-cache"),
		},
		Cache: Cache{
			CacheRepository: in("cache-repository"),
			CacheTagPrefix:  in("cache-tag-prefix"),
			CacheScope:      in("cache-scope"),
			CacheMode:       solve.CacheMode(in("cache-mode")),
			CacheFrom:       list("cache-from", true),
			CacheFromMerged: boolean("cache-from-merged"),
			DefaultBranch:   in("default-branch"),
		},
		AWSRegion:        cmp.Or(in("aws-region"), a.Getenv("AWS_REGION"), a.Getenv("AWS_DEFAULT_REGION")),
		Username:         in("username"),
		Password:         in("password"),
		BuildkitHost:     in("buildkit-host"),
		Builder:          in("builder"),
		UntrustedPush:    boolean("untrusted-push"),
		UntrustedSecrets: boolean("untrusted-secrets"),
		GitHubToken:      in("github-token"),

		UntrustedEntitlements: boolean("untrusted-entitlements"),
		TLS: buildkitconn.TLS{
			CACert:     in("buildkit-tls-ca-cert"),
			Cert:       in("buildkit-tls-cert"),
			Key:        in("buildkit-tls-key"),
			ServerName: in("buildkit-tls-server-name"),
		},
		BuildkitAllowInsecureTCP: boolean("buildkit-allow-insecure-tcp"),
		BuildkitHostNetwork:      boolean("buildkit-host-network"),
		DockerConfigDir:          a.Getenv("DOCKER_CONFIG"),
	}
	// Read raw: build-push-action keeps a secret's surrounding whitespace.
	c.readSecrets(&p, a, m, a.Getenv(envName("secrets")), in("secret-files"))
	var errs []error
	c.BuildArgs, errs = KeyValues(in("build-args"), "build-args")
	p = append(p, errs...)
	c.Labels, errs = KeyValues(in("labels"), "labels")
	p = append(p, errs...)
	c.readBuildExtras(&p, in, list("platforms", true))
	c.readEvent(&p, a)
	c.Cleanup = boolean("cache-cleanup") && cacheref.IsCleanupEvent(c.Event)
	if c.Cleanup {
		checkCleanupOnly(&p, in, c.Event)
	}
	c.CleanupScopes = list("cache-cleanup-scopes", false)
	c.CacheRefreshAfter = refreshAfter(&p, in("cache-refresh-days"))

	c.readMerge(&p, a, list)
	c.readBuildOptions(&p, a, m, in, boolean, list)

	c.readRegistry(&p, in("registry"))
	c.checkRefs(&p)
	switch {
	case c.Merge:
		c.checkMerge(&p, in)
	case !c.Cleanup: // a cleanup run builds nothing
		c.checkBuildInputs(&p, in("file"))
		c.checkPushByDigest(&p)
	}
	c.checkCache(&p, in("cache-export"), in("cache-export-timeout"))
	c.readMounts(&p, in, list)
	c.checkBuildkit(&p)
	if (c.Username == "") != (c.Password == "") {
		p.add("username and password: give both or neither")
	}
	checkUnknownInputs(&p, environ)

	if len(p) > 0 {
		return nil, fmt.Errorf("invalid inputs (%d problems):\n%w", len(p), errors.Join(p...))
	}
	return c, nil
}

func (c *Config) readRegistry(p *problems, v string) {
	switch {
	case strings.HasPrefix(v, "http://"):
		c.Insecure = true
		v = strings.TrimPrefix(v, "http://")
	case strings.HasPrefix(v, "https://"):
		v = strings.TrimPrefix(v, "https://")
	}
	c.Registry = strings.TrimSuffix(v, "/")
	if c.Registry != "" && !anchoredHost.MatchString(c.Registry) {
		p.add("registry: %q is not a registry host; write host[:port], optionally after http:// for a plain-HTTP registry", v)
	}
	host, _, err := net.SplitHostPort(c.Registry)
	if err != nil {
		host = c.Registry
	}
	if _, _, isECR := ecr.ParseHost(host); isECR && c.Insecure {
		p.add("registry: %q is an ECR registry over plain HTTP, which would send the ECR token in clear; drop http://", "http://"+v)
	}
}

// checkRefs validates the repositories, tags and extra cache refs, and
// defaults the cache repository (and the registry) when they can be told.
func (c *Config) checkRefs(p *problems) {
	if c.CacheRepository == "" {
		c.CacheRepository = c.Repository
	}
	c.Tags = c.bareTags()
	if c.CacheRepository == "" {
		c.cacheFromFirstTag()
	}
	for _, f := range []struct{ name, val string }{{"repository", c.Repository}, {"cache-repository", c.CacheRepository}} {
		if f.val == "" {
			continue
		}
		if _, err := reference.ParseNamed("registry.invalid/" + f.val); err != nil {
			p.add("%s: %q is not a valid repository name (%v); use lowercase letters, digits and separators, e.g. team/app", f.name, f.val, err)
		}
	}
	if c.CacheRepository == "" {
		p.add("repository: required (the image repository, e.g. my-app) unless every tag is a full reference (registry/app:tag); cache-repository may name a separate one for the cache")
	}
	if c.Push && len(c.Tags) == 0 && !c.PushByDigest && !c.Merge && !c.Cleanup {
		p.add("tags: at least one tag is needed to push; set tags, or push: false to build and cache only")
	}
	for _, t := range c.Tags {
		if isFullRef(t) {
			if named, err := reference.ParseNormalizedNamed(t); err != nil {
				p.add("tags: %q is not a valid image reference: %v", t, err)
			} else {
				c.checkDockerHub(p, t, named)
			}
			continue
		}
		if !anchoredTag.MatchString(t) {
			p.add("tags: %q is not a valid tag; a tag is up to 128 letters, digits, '_', '.', '-', not starting with '.' or '-'", t)
		} else if c.Repository == "" {
			p.add("tags: bare tag %q needs the repository input (or write a full reference)", t)
		}
	}
	rawForm := ""
	for _, r := range c.CacheFrom {
		if strings.Contains(r, "=") { // no image reference holds '='
			rawForm = cmp.Or(rawForm, r)
		} else if _, err := reference.ParseNormalizedNamed(r); err != nil {
			p.add("cache-from: %q is not a valid image reference: %v", r, err)
		}
	}
	if rawForm != "" {
		p.add("cache-from: %q is build-push-action's raw form (type=registry,ref=...); this action derives the cache ref (see cache-tag-prefix/cache-scope): give cache-from extra image references to import, e.g. registry/app:cache-main", rawForm)
	}
}

// cacheFromFirstTag defaults the cache repository to the first tag's when no
// repository is given and every tag is a full reference (as action.yml
// promises), and the registry to that tag's host when none is given.
func (c *Config) cacheFromFirstTag() {
	if len(c.Tags) == 0 || slices.IndexFunc(c.Tags, func(t string) bool { return !isFullRef(t) }) >= 0 {
		return
	}
	named, err := reference.ParseNormalizedNamed(c.Tags[0])
	if err != nil {
		return // reported with the tags
	}
	c.CacheRepository = reference.Path(named)
	if c.Registry == "" {
		c.Registry = reference.Domain(named)
	}
}

// bareTags turns a tag written <repository>:<tag>, with the repository input
// as its repository part and no registry (docker/metadata-action's tags output
// for images: <repository>), into the bare tag, which goes to that repository
// in the target registry: read as a full reference it would mean Docker Hub.
func (c *Config) bareTags() []string {
	out := slices.Clone(c.Tags)
	for i, t := range out {
		if tag, ok := strings.CutPrefix(t, c.Repository+":"); ok && c.Repository != "" && anchoredTag.MatchString(tag) {
			out[i] = tag
		}
	}
	return out
}

// dockerHubHosts are the names Docker Hub is written with in a reference or the
// registry input.
var dockerHubHosts = []string{"docker.io", "index.docker.io", "registry-1.docker.io"}

// checkDockerHub refuses a full reference that names no registry, and so means
// Docker Hub, while the build targets another registry (c.Registry: the
// registry input, else the first tag's without a repository input, else ECR):
// a tag from docker/metadata-action whose images input lacks the registry host
// would otherwise be pushed to Docker Hub unnoticed. Docker Hub written out
// (docker.io/...) is taken as meant.
func (c *Config) checkDockerHub(p *problems, t string, named reference.Named) {
	host, _, _ := strings.Cut(t, "/")
	if reference.Domain(named) != "docker.io" || slices.Contains(dockerHubHosts, host) || slices.Contains(dockerHubHosts, c.Registry) {
		return
	}
	target := "the ECR registry of the AWS credentials (the registry input is empty)"
	if c.Registry != "" {
		target = "registry " + c.Registry
	}
	tag := "latest"
	if tagged, ok := named.(reference.Tagged); ok {
		tag = tagged.Tag()
	}
	fix := fmt.Sprintf("set repository: %s and write %q (or give metadata-action's images the registry host)", reference.FamiliarName(named), tag)
	if c.Repository != "" {
		fix = fmt.Sprintf("write %q or %q for repository %s, or the registry host in full (<host>/%s)", tag, c.Repository+":"+tag, c.Repository, reference.FamiliarString(named))
	}
	p.add("tags: %q names no registry, so it means Docker Hub (%s), but this build pushes to %s: %s; write %q to push to Docker Hub on purpose",
		t, named.String(), target, fix, "docker.io/"+reference.FamiliarString(named))
}

// isFullRef tells a full reference (registry/repo:tag) from a bare tag.
func isFullRef(t string) bool { return strings.ContainsAny(t, "/:@") }

// ImageRefs expands bare tags to <registry>/<repository>:<tag>.
func (i *Image) ImageRefs(registry string) []string {
	out := make([]string, 0, len(i.Tags))
	for _, t := range i.Tags {
		if isFullRef(t) {
			out = append(out, t)
		} else {
			out = append(out, registry+"/"+i.Repository+":"+t)
		}
	}
	return out
}

func (c *Config) checkBuildInputs(p *problems, file string) {
	if st, err := os.Stat(c.Context); err != nil || !st.IsDir() {
		p.add("context: %q is not a directory; give the build context directory (default .)", c.Context)
	}
	c.Dockerfile = cmp.Or(file, filepath.Join(c.Context, "Dockerfile"))
	if st, err := os.Stat(c.Dockerfile); err != nil || st.IsDir() {
		p.add("file: Dockerfile %q not found; set file to the Dockerfile's path", c.Dockerfile)
	}
}

func (c *Config) checkCache(p *problems, export, timeout string) {
	d, err := time.ParseDuration(timeout)
	if err != nil || d <= 0 {
		p.add("cache-export-timeout: %q is not a positive duration such as 10m or 90s", timeout)
	}
	c.CacheExportTimeout = d
	if c.CacheMode != solve.CacheModeMax && c.CacheMode != solve.CacheModeMin {
		p.add("cache-mode: %q is not max or min", c.CacheMode)
	}
	mode, err := cacheref.ParseExportMode(export)
	if err != nil {
		p.add("cache-export: %w", err)
	}
	c.CacheExport = mode
	if err := cacheref.ValidPrefix(c.CacheTagPrefix); err != nil {
		p.add("%w", err)
	}
}

func (c *Config) checkBuildkit(p *problems) {
	if c.BuildkitHost != "" {
		if err := buildkitconn.CheckAddr(c.BuildkitHost, c.TLS, c.BuildkitAllowInsecureTCP); err != nil {
			p.add("buildkit-host: %w", err)
		}
	}
	for _, f := range []struct{ name, path string }{
		{"buildkit-tls-ca-cert", c.TLS.CACert}, {"buildkit-tls-cert", c.TLS.Cert}, {"buildkit-tls-key", c.TLS.Key},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			p.add("%s: %q cannot be read: %v", f.name, f.path, err)
		}
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		p.add("buildkit-tls-cert and buildkit-tls-key: give both or neither")
	}
}

// readEvent reads the event's variables and its raw payload, unparsed: the
// cache policy decides what an unreadable payload means (a push build needs
// nothing from it; a pull request is then untrusted). go-githubactions'
// Context would fail the whole run on a payload that is not JSON.
func (c *Config) readEvent(p *problems, a *githubactions.Action) {
	c.Event = cacheref.Event{Name: a.Getenv("GITHUB_EVENT_NAME"), Ref: a.Getenv("GITHUB_REF"),
		HeadRef: a.Getenv("GITHUB_HEAD_REF"), BaseRef: a.Getenv("GITHUB_BASE_REF")}
	if path := a.Getenv("GITHUB_EVENT_PATH"); path != "" {
		var err error
		c.Event.Payload, err = os.ReadFile(path)
		if err != nil && !os.IsNotExist(err) {
			p.add("GITHUB_EVENT_PATH: %w", err)
		}
	}
}

// SinglePlatform is the platform the build targets when it targets exactly
// one, normalized (linux/arm64/v8 is linux/arm64); "" otherwise.
func (b *Build) SinglePlatform() string {
	if p := b.NormalizedPlatforms(); len(b.Platforms) == 1 && len(p) == 1 {
		return p[0]
	}
	return ""
}

// NormalizedPlatforms are the platforms input's entries, normalized.
func (b *Build) NormalizedPlatforms() []string {
	out := make([]string, 0, len(b.Platforms))
	for _, s := range b.Platforms {
		if p, err := normalizePlatform(s); err == nil { // Read reported the others
			out = append(out, p)
		}
	}
	return out
}

// normalizePlatform parses os/arch[/variant] and writes it as containerd
// normalizes it.
func normalizePlatform(s string) (string, error) {
	pl, err := platforms.Parse(s)
	if err != nil {
		return "", err
	}
	return platforms.Format(platforms.Normalize(pl)), nil
}
