package buildkitconn_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecr-build-cache/ecr-build-cache/internal/buildkitconn"
)

// With no builder, buildkit-host or BUILDKIT_HOST, the run builds on buildx's
// current builder, as docker/build-push-action does, and starts its own
// container only when there is none it can use. testdata/buildx/<case> is a
// DOCKER_CONFIG directory in the shapes buildx writes: buildx/current (the
// current builder per docker endpoint), buildx/defaults/<digest of the
// endpoint> (buildx use --default), buildx/instances/<name>.
func TestBuildxCurrentBuilderIsUsedWhenNothingElseIsGiven(t *testing.T) {
	t.Parallel()
	const setupBuildx = "builder-5c1b8a2e-7d0f-4a5e-9b9e-0f6b1c2d3e4f" // setup-buildx-action's builder-<uuid>
	daemon, err := buildkitconn.ParseDaemon("", "debug = true\n", "")
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		env    map[string]string // DOCKER_CONFIG is testdata/buildx/<dir> unless set
		dir    string
		daemon buildkitconn.Daemon
		// want is the address built on; "" means a container the run started.
		want, notice, warning string
	}{
		"setup-buildx-action's builder, current on the default engine": {
			dir: "setup-buildx", want: "docker-container://buildx_buildkit_" + setupBuildx + "0", notice: "buildx's current builder " + setupBuildx,
		},
		"found through HOME/.docker as well": {
			dir: "setup-buildx", env: map[string]string{"DOCKER_CONFIG": "", "HOME": "HOME"}, want: "docker-container://buildx_buildkit_" + setupBuildx + "0",
		},
		"found through BUILDX_CONFIG": {
			dir: "setup-buildx", env: map[string]string{"DOCKER_CONFIG": "/nonexistent", "BUILDX_CONFIG": "testdata/buildx/setup-buildx/buildx"},
			want: "docker-container://buildx_buildkit_" + setupBuildx + "0",
		},
		"current for another engine (DOCKER_HOST)": {
			dir: "setup-buildx", env: map[string]string{"DOCKER_HOST": "unix:///run/other.sock"},
		},
		"current for the context config.json names": {
			dir: "context", want: "docker-container://buildx_buildkit_remote-builder0?context=remote-engine",
		},
		"DOCKER_CONTEXT overrides config.json": {
			dir: "context", env: map[string]string{"DOCKER_CONTEXT": "default"},
		},
		"a global current builder, made for another engine": {
			dir: "global", want: "docker-container://buildx_buildkit_shared0",
		},
		"the engine's default builder (buildx use --default)": {
			dir: "default", want: "docker-container://buildx_buildkit_ci0",
		},
		"BUILDX_BUILDER names one": {
			dir: "setup-buildx", env: map[string]string{"BUILDX_BUILDER": "ci", "DOCKER_CONFIG": "testdata/buildx/default"},
			want: "docker-container://buildx_buildkit_ci0",
		},
		"current builder removed (buildx rm)": {dir: "removed"},
		"no buildx store":                     {dir: "none"},
		"no DOCKER_CONFIG, no HOME":           {dir: "setup-buildx", env: map[string]string{"DOCKER_CONFIG": ""}},
		"a driver this action cannot reach": {
			dir: "kubernetes", warning: "buildx's current builder kube was not used: builder \"kube\" uses the kubernetes driver",
		},
		"daemon inputs ask for the action's own container": {
			dir: "setup-buildx", daemon: daemon, warning: "buildx's current builder " + setupBuildx + " was not used: buildkit-image, buildkitd-config-inline and buildkitd-flags",
		},
	} {
		getenv, _, _ := fakeDocker(t)
		env := map[string]string{"PATH": getenv("PATH"), "DOCKER_CONFIG": filepath.Join("testdata", "buildx", c.dir)}
		for k, v := range c.env {
			env[k] = v
		}
		if env["HOME"] == "HOME" {
			// A home whose .docker is the case's directory.
			home := t.TempDir()
			abs, err := filepath.Abs(filepath.Join("testdata", "buildx", c.dir))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(abs, filepath.Join(home, ".docker")); err != nil {
				t.Fatal(err)
			}
			env["HOME"] = home
		}
		ep, err := buildkitconn.Resolve(context.Background(), buildkitconn.Options{Daemon: c.daemon, Getenv: func(k string) string { return env[k] }})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if c.want == "" {
			if ep.Container == "" || ep.Addr != "docker-container://"+ep.Container {
				t.Errorf("%s: built on %s (%s), want a container the action started", name, ep.Addr, ep.Source)
			}
		} else if ep.Addr != c.want || ep.Container != "" || !strings.Contains(ep.Source, "buildx") {
			t.Errorf("%s: built on %s (%s, container %q), want %s", name, ep.Addr, ep.Source, ep.Container, c.want)
		}
		if !strings.Contains(ep.Notice, c.notice) || (c.notice == "" && c.want == "" && ep.Notice != "") {
			t.Errorf("%s: notice %q, want one with %q", name, ep.Notice, c.notice)
		}
		if c.want != "" && env["BUILDX_BUILDER"] == "" && !strings.Contains(ep.Notice, "as docker/build-push-action does") {
			t.Errorf("%s: no notice says why it builds on buildx's current builder: %q", name, ep.Notice)
		}
		if !strings.Contains(ep.Warning, c.warning) || (c.warning == "" && ep.Warning != "") {
			t.Errorf("%s: warning %q, want one with %q", name, ep.Warning, c.warning)
		}
	}
}
