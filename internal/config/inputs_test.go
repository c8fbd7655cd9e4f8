package config

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// action.yml declares exactly the inputs Read knows, and a default: key for
// each input whose default is one fixed value, equal to inputDefaults' (editors,
// actionlint and the Marketplace page show it; the runner passes it, and Read
// applies the same value when an in-process run passes nothing). An input whose
// default depends on other inputs has no default: key, as the runner would pass
// it as if given; its description states the default.
func TestActionYAMLMatchesInputs(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../action.yml")
	if err != nil {
		t.Fatal(err)
	}
	var action struct {
		Inputs map[string]map[string]string
	}
	if err := yaml.Unmarshal(b, &action); err != nil {
		t.Fatal(err)
	}
	declared := slices.Sorted(maps.Keys(action.Inputs))
	if known := slices.Sorted(maps.Keys(inputDefaults)); !slices.Equal(declared, known) {
		t.Errorf("action.yml inputs:\n%q\nconfig's inputs:\n%q", declared, known)
	}
	for name, fields := range action.Inputs {
		d, hasDefault := fields["default"]
		def := inputDefaults[name]
		switch {
		case givenMatters[name]:
			if hasDefault {
				t.Errorf("action.yml: %s has default %q, but Read tells a given %s from none: remove it", name, d, name)
			}
			if !strings.Contains(fields["description"], "(default "+def) {
				t.Errorf("action.yml: %s's description does not state its default (default %s): %q", name, def, fields["description"])
			}
		case hasDefault && d != def:
			t.Errorf("action.yml: %s has default %q; config's inputDefaults has %q", name, d, def)
		case !hasDefault && def != "":
			t.Errorf("action.yml: %s has no default: key; config's inputDefaults has %q", name, def)
		}
	}
}

// givenMatters are the inputs whose effect depends on whether the step gave
// them, not only on their value: push defaults to false with outputs, true
// without (buildopts.go reads it with GetInput).
var givenMatters = map[string]bool{"push": true}

// Defaults apply when the runner passes nothing (an in-process run, or an
// input without a default: key).
func TestReadDefaults(t *testing.T) {
	t.Parallel()
	env := validEnv(appDir(t))
	env["INPUT_FILE"] = filepath.Join(env["INPUT_CONTEXT"], "Dockerfile")
	delete(env, "INPUT_CONTEXT")
	delete(env, "INPUT_TAGS")
	env["INPUT_PUSH"] = "false" // no tags to push
	c, err := Read(action(env), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Context != "." || c.CacheMode != "max" || c.CacheTagPrefix != "cache" || c.CacheExport != "auto" ||
		c.NoCache || c.UntrustedPush || c.UntrustedSecrets || c.UntrustedEntitlements || c.BuildkitAllowInsecureTCP {
		t.Errorf("defaults: %+v", c)
	}
	delete(env, "INPUT_PUSH")
	if _, err := Read(action(env), nil); err == nil || !strings.Contains(err.Error(), "tags: at least one tag is needed to push") {
		t.Errorf("push should default to true, so no tags is an error: %v", err)
	}
}

// Every with: key the action does not declare fails the run, named, with the
// likely intended input or what to do instead.
func TestReadUnknownInputs(t *testing.T) {
	t.Parallel()
	env := validEnv(appDir(t))
	environ := []string{"PATH=/usr/bin", "GITHUB_REF=refs/heads/main"}
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	for _, tc := range []struct {
		given string // as the runner names it
		want  string
	}{
		{"INPUT_CACHE-TO=type=registry,ref=x/app:cache,mode=max", "cache-to: not an input of this action: this action derives the cache ref; see cache-tag-prefix/cache-scope/cache-from"},
		{"INPUT_ATTESTS=type=sbom", "attests: not an input of this action: use provenance and sbom"},
		{"INPUT_CACHE_MODE=min", "cache_mode: not an input of this action; did you mean cache-mode?"},
		{"INPUT_TAG=latest", "tag: not an input of this action; did you mean tags?"},
		{"INPUT_BUILD-ARG=A=1", "build-arg: not an input of this action; did you mean build-args?"},
		{"INPUT_CACHE-SCOPES=x", "cache-scopes: not an input of this action; did you mean cache-scope?"},
		{"INPUT_IMAGE-NAME=x", "image-name: not an input of this action (action.yml lists the inputs)"},
	} {
		_, err := Read(action(env), append(slices.Clone(environ), tc.given))
		if err == nil {
			t.Errorf("%s: accepted", tc.given)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "(1 problems)") || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: want one problem %q, got:\n%s", tc.given, tc.want, msg)
		}
	}
	// Declared inputs in any case the runner passes, and nil environ, are fine.
	if _, err := Read(action(env), append(environ, "INPUT_UNTRUSTED-PUSH=false")); err != nil {
		t.Errorf("declared inputs only: %v", err)
	}
	if _, err := Read(action(env), nil); err != nil {
		t.Errorf("nil environ: %v", err)
	}
}

// buildPushActionInputs are docker/build-push-action's inputs (its action.yml).
var buildPushActionInputs = []string{
	"add-hosts", "allow", "annotations", "attests", "build-args", "build-contexts",
	"builder", "cache-from", "cache-to", "call", "cgroup-parent", "context", "file",
	"github-token", "labels", "load", "network", "no-cache", "no-cache-filters",
	"outputs", "platforms", "provenance", "pull", "push", "sbom", "secret-envs",
	"secret-files", "secrets", "shm-size", "ssh", "tags", "target", "ulimit",
}

// A workflow moved from build-push-action keeps its with: block: each of its
// inputs is one of this action's, or fails saying what replaces it.
func TestEveryBuildPushActionInputIsHandled(t *testing.T) {
	t.Parallel()
	for _, name := range buildPushActionInputs {
		if _, ok := inputDefaults[name]; !ok && insteadOf[name] == "" {
			t.Errorf("build-push-action's %s is neither an input nor in insteadOf", name)
		}
	}
}
