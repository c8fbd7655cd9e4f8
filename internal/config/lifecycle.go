package config

import (
	"strconv"
	"strings"
	"time"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
)

// refreshAfter reads cache-refresh-days: a whole number of days, 0 for never.
func refreshAfter(p *problems, v string) time.Duration {
	days, err := strconv.Atoi(v)
	if err != nil || days < 0 {
		p.add("cache-refresh-days: %q is not a whole number of days (0 turns refreshing off); keep it below the expiry days of your ECR lifecycle rule", v)
		return 0
	}
	return time.Duration(days) * 24 * time.Hour
}

// buildInputs are the inputs that say what to build or push, which a cleanup
// never reads. The rest a cleanup reads (repository, registry, cache-*,
// platforms for per-platform cache tags) or only say where the builder is.
var buildInputs = []string{
	"tags", "push", "push-by-digest", "merge-digests", "merge-platforms", "file", "build-args", "target",
	"labels", "annotations", "secrets", "secret-files", "secret-envs", "ssh", "build-contexts", "github-token",
	"no-cache", "no-cache-filters", "provenance", "sbom", "outputs", "load", "pull", "call", "allow",
	"network", "add-hosts", "shm-size", "ulimit", "cgroup-parent", "cache-mounts",
}

// checkCleanupOnly refuses a cleanup run (cache-cleanup on a delete event or a
// closed pull request) of a step given build inputs: a build workflow on
// pull_request closed ("build after merge") would otherwise delete the pull
// request's cache and build nothing, green. Failing, rather than building,
// keeps both readings loud: the action cannot tell cache-cleanup: true written
// from its default, and a branch's delete event has no code of its own to build.
// An input counts when its value differs from its default, so action.yml's
// default: keys do not make every step a build step.
func checkCleanupOnly(p *problems, in func(string) string, ev cacheref.Event) {
	given := givenInputs(in, buildInputs)
	if len(given) == 0 {
		return
	}
	event := "delete event"
	if ev.Name != "delete" {
		event = ev.Name + " event with action closed"
	}
	p.add("cache-cleanup: on a %s this step deletes the cache of the branch or pull request and builds nothing (cache-cleanup defaults to true), "+
		"but it is given build inputs (%s); to build on this event set cache-cleanup: false, "+
		"or keep the cleanup in a step of its own without build inputs and skip this one with if: github.event.action != 'closed' (see docs/lifecycle.md)",
		event, strings.Join(given, ", "))
}
