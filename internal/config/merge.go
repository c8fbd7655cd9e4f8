package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/sethvargo/go-githubactions"
)

// mergeIgnores are the inputs that shape a build or its cache, which a merge
// (it builds nothing) would silently ignore.
var mergeIgnores = []string{
	"file", "build-args", "target", "platforms", "labels", "secrets", "secret-files", "no-cache",
	"provenance", "sbom", "push-by-digest", "cache-repository", "cache-mode", "cache-export",
	"cache-export-timeout", "cache-from",
}

var sha256Digest = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// readMerge reads merge-digests and merge-platforms. Either makes the run a
// merge when its raw value is not empty, even if it holds no entry: a list
// spliced from build jobs' outputs that all came out empty is a failed
// hand-over, not a request to build.
func (c *Config) readMerge(p *problems, a *githubactions.Action, list func(string, bool) []string) {
	rawDigests, rawPlatforms := a.Getenv(envName("merge-digests")), a.Getenv(envName("merge-platforms"))
	c.Merge = rawDigests != "" || rawPlatforms != ""
	if !c.Merge {
		return
	}
	c.MergeDigests, c.MergePlatforms = list("merge-digests", true), nil
	switch {
	case rawDigests != "" && rawPlatforms != "":
		p.add("merge-digests and merge-platforms: give one; merge-platforms finds the digests that this workflow run's push-by-digest steps staged, merge-digests takes them as given")
	case rawDigests != "" && len(c.MergeDigests) == 0:
		p.add("merge-digests: no digest in %q; give the per-platform digests (the digest outputs of push-by-digest steps), newline or comma separated: did the build jobs push nothing?", rawDigests)
	case rawPlatforms != "":
		c.readMergePlatforms(p, list("merge-platforms", true), rawPlatforms)
	}
	for _, d := range c.MergeDigests {
		if err := checkMergeDigest(d); err != nil {
			p.add("merge-digests: %q %v; write sha256:<64 hex digits> (in repository) or repository@sha256:<64 hex digits>", d, err)
		}
	}
}

func (c *Config) readMergePlatforms(p *problems, list []string, raw string) {
	if len(list) == 0 {
		p.add("merge-platforms: no platform in %q; list the platforms whose push-by-digest images to merge, e.g. linux/amd64,linux/arm64", raw)
	}
	for _, s := range list {
		norm, err := normalizePlatform(s)
		if err != nil {
			p.add("merge-platforms: %q is not a platform (%v); write os/arch[/variant], e.g. linux/amd64,linux/arm64", s, err)
			continue
		}
		if slices.Contains(c.MergePlatforms, norm) {
			p.add("merge-platforms: %s is listed twice; an index holds one image per platform", norm)
			continue
		}
		c.MergePlatforms = append(c.MergePlatforms, norm)
	}
}

// checkMergeDigest accepts sha256:<hex> and <repository>@sha256:<hex>, where
// the repository may name its registry host.
func checkMergeDigest(s string) error {
	name, dgst, hasName := strings.Cut(s, "@")
	if !hasName {
		name, dgst = "", s
	}
	if !sha256Digest.MatchString(dgst) {
		return fmt.Errorf("is not a sha256 digest")
	}
	if !hasName {
		return nil
	}
	if !hasHost(name) {
		name = "registry.invalid/" + name
	}
	named, err := reference.ParseNamed(name)
	if err != nil {
		return fmt.Errorf("does not name a repository (%w)", err)
	}
	if _, tagged := named.(reference.Tagged); tagged {
		return fmt.Errorf("has a tag; give the repository and digest only")
	}
	return nil
}

// hasHost tells whether a repository name starts with a registry host, by
// Docker's rule: a first component with '.' or ':', or localhost.
func hasHost(name string) bool {
	first, _, found := strings.Cut(name, "/")
	return found && (strings.ContainsAny(first, ".:") || first == "localhost")
}

// MergeRefs are the merge-digests as full references by digest: a bare digest
// is in repository on host, a repository without a host is on host.
func (c *Config) MergeRefs(host, repository string) []string {
	out := make([]string, 0, len(c.MergeDigests))
	for _, d := range c.MergeDigests {
		name, dgst, hasName := strings.Cut(d, "@")
		switch {
		case !hasName:
			out = append(out, host+"/"+repository+"@"+d)
		case hasHost(name):
			out = append(out, d)
		default:
			out = append(out, host+"/"+name+"@"+dgst)
		}
	}
	return out
}

// checkMerge checks what a merge needs: tags to push the index under, a push,
// only index annotations, and none of the build's inputs.
func (c *Config) checkMerge(p *problems, in func(string) string) {
	if len(c.Tags) == 0 {
		p.add("tags: a merge pushes the image index under its tags; give at least one")
	}
	if !c.Push {
		p.add("push: a merge only pushes (the image index); remove push: false")
	}
	if given := givenInputs(in, mergeIgnores); len(given) > 0 {
		p.add("%s: a merge builds nothing, so these would be ignored; remove them from the merge step (they belong to the push-by-digest build steps)", strings.Join(given, ", "))
	}
	var notIndex []string
	for k := range c.Annotations {
		if !strings.HasPrefix(k, "annotation-index.") {
			notIndex = append(notIndex, k)
		}
	}
	slices.Sort(notIndex)
	for _, k := range notIndex {
		p.add("annotations: a merge annotates only the image index it pushes (exporter attribute %s); write index:KEY=VALUE, without a platform", k)
	}
}

// checkPushByDigest checks a push-by-digest build: one platform, pushed
// without tags to the repository input.
func (c *Config) checkPushByDigest(p *problems) {
	if !c.PushByDigest {
		return
	}
	if !c.Push {
		p.add("push-by-digest: pushes the image by digest, which push: false forbids; remove one of them")
	}
	if len(c.Tags) > 0 {
		p.add("tags: push-by-digest pushes the image without tags; give the tags to the merge step (merge-digests or merge-platforms)")
	}
	if len(c.Platforms) > 1 {
		p.add("platforms: push-by-digest builds one platform per step (%d given); build each on its own runner and merge them, or push the multi-platform image under tags", len(c.Platforms))
	}
	// Without repository and cache-repository, checkRefs already asks for repository.
	if c.Repository == "" && c.CacheRepository != "" {
		p.add("repository: push-by-digest pushes the image to the repository input; set it")
	}
}
