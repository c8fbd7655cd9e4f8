package config

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
)

// inputDefaults is every input the action declares, with its default ("" for
// none, or a default computed from other inputs or the environment).
// action.yml declares the same names, and the same fixed defaults as default:
// keys (inputs_test.go checks both), so a runner and an in-process run see the
// same values. Adding an input is one line here and its entry in action.yml.
var inputDefaults = map[string]string{
	"repository":                  "",
	"registry":                    "",
	"tags":                        "",
	"push":                        "true",
	"context":                     ".",
	"file":                        "",
	"build-args":                  "",
	"target":                      "",
	"platforms":                   "",
	"labels":                      "",
	"annotations":                 "",
	"secrets":                     "",
	"secret-files":                "",
	"no-cache":                    "false",
	"provenance":                  "",
	"sbom":                        "",
	"cache-repository":            "",
	"cache-tag-prefix":            cacheref.DefaultPrefix,
	"cache-scope":                 "",
	"cache-mode":                  "max",
	"cache-export":                string(cacheref.ExportAuto),
	"cache-export-timeout":        "10m", // far above a healthy large export, far below the 6-hour job limit
	"cache-from":                  "",
	"cache-from-merged":           "true",
	"cache-mounts":                "",
	"cache-mounts-max-size":       "2GiB",
	"cache-mounts-shared-builder": "",
	"compression":                 "", // gzip for the image; zstd for the layers only a max-mode cache holds
	"compression-level":           "",
	"default-branch":              "",
	"aws-region":                  "",
	"username":                    "",
	"password":                    "",
	"buildkit-host":               "",
	"builder":                     "",
	"buildkit-tls-ca-cert":        "",
	"buildkit-tls-cert":           "",
	"buildkit-tls-key":            "",
	"buildkit-tls-server-name":    "",
	"buildkit-allow-insecure-tcp": "false",
	"buildkit-host-network":       "false",
	"untrusted-push":              "false",
	"untrusted-secrets":           "false",
	"untrusted-entitlements":      "false",
	"push-by-digest":              "false",
	"merge-digests":               "",
	"merge-platforms":             "",
	"cache-cleanup":               "true",
	"cache-cleanup-scopes":        "",
	"cache-refresh-days":          "7", // half of docs/lifecycle.md's 14-day lifecycle rule
	"ssh":                         "",
	"build-contexts":              "",
	"secret-envs":                 "",
	"github-token":                "",
	"outputs":                     "",
	"load":                        "false",
	"pull":                        "false",
	"no-cache-filters":            "",
	"allow":                       "",
	"network":                     "",
	"add-hosts":                   "",
	"shm-size":                    "",
	"ulimit":                      "",
	"cgroup-parent":               "",
	"call":                        "build",
	"buildkit-image":              "",
	"buildkitd-config-inline":     "",
	"buildkitd-flags":             "",
}

// insteadOf says what replaces a build-push-action input this action handles
// differently on purpose.
var insteadOf = map[string]string{
	"cache-to": "this action derives the cache ref; see cache-tag-prefix/cache-scope/cache-from",
	"attests":  "use provenance and sbom",
}

// envName is the variable the runner passes an input in (as go-githubactions
// reads it): the name uppercased, spaces to '_', '-' kept.
func envName(input string) string {
	return "INPUT_" + strings.ToUpper(strings.ReplaceAll(input, " ", "_"))
}

// givenInputs are those of names whose value differs from its default: a
// step given them, as action.yml's default: keys fill in the rest.
func givenInputs(in func(string) string, names []string) []string {
	var given []string
	for _, name := range names {
		if in(name) != inputDefaults[name] {
			given = append(given, name)
		}
	}
	return given
}

// checkUnknownInputs reports every INPUT_* variable in environ that names no
// input of this action: the runner passes an undeclared with: key on with only a
// warning, so without this a misspelt or unsupported input is silently dropped.
func checkUnknownInputs(p *problems, environ []string) {
	known := make(map[string]bool, len(inputDefaults))
	for name := range inputDefaults {
		known[envName(name)] = true
	}
	var unknown []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "INPUT_") && !known[k] {
			unknown = append(unknown, strings.ToLower(strings.TrimPrefix(k, "INPUT_")))
		}
	}
	slices.Sort(unknown)
	for _, name := range slices.Compact(unknown) {
		switch {
		case insteadOf[name] != "":
			p.add("%s: not an input of this action: %s", name, insteadOf[name])
		default:
			if s := closestInput(name); s != "" {
				p.add("%s: not an input of this action; did you mean %s?", name, s)
			} else {
				p.add("%s: not an input of this action (action.yml lists the inputs)", name)
			}
		}
	}
}

// closestInput is the declared input nearest to name in edit distance, if it
// is near enough to be a likely typo ("" otherwise).
func closestInput(name string) string {
	best, bestD := "", max(1, len(name)/3)+1
	for _, in := range slices.Sorted(maps.Keys(inputDefaults)) {
		// The runner writes '_' for ' ', and users write '_' for '-'.
		if d := editDistance(strings.ReplaceAll(name, "_", "-"), in); d < bestD {
			best, bestD = in, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes (input
// names are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			sub := prev[j-1]
			if a[i-1] != b[j-1] {
				sub++
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, sub)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// input is an input's value as given (trimmed, as go-githubactions reads it),
// else its default.
func input(get func(string) string, name string) string {
	def, ok := inputDefaults[name]
	if !ok {
		panic(fmt.Sprintf("config: input %q is not in inputDefaults", name))
	}
	return cmp.Or(get(name), def)
}
