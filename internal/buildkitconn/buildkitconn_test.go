package buildkitconn_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"

	"github.com/ecr-build-cache/ecr-build-cache/internal/buildkitconn"
	"github.com/ecr-build-cache/ecr-build-cache/internal/teststack"
)

func TestMain(m *testing.M) { os.Exit(teststack.MainWith(m, teststack.Options{TLS: true})) }

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func resolve(t *testing.T, opt buildkitconn.Options) buildkitconn.Endpoint {
	t.Helper()
	ep, err := buildkitconn.Resolve(context.Background(), opt)
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	return ep
}

// buildOn connects like the action does and runs one RUN step on the stack's
// base image, returning the file the step wrote.
func buildOn(t *testing.T, s *teststack.Stack, ep buildkitconn.Endpoint) string {
	t.Helper()
	ctx := context.Background()
	c, err := buildkitconn.Connect(ctx, ep)
	if err != nil {
		t.Fatalf("connect to %s: %v", ep.Addr, err)
	}
	defer c.Close()
	// The test's name keeps the step from being a cache hit of another test's.
	st := llb.Image(s.BaseImage).Run(llb.Args([]string{"/bin/sh", "-c", "echo built by " + t.Name() + " > /out"})).Root()
	def, err := st.Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := c.Solve(ctx, def, client.SolveOpt{Exports: []client.ExportEntry{{Type: client.ExporterLocal, OutputDir: out}}}, nil); err != nil {
		t.Fatalf("build on %s: %v", ep.Addr, err)
	}
	b, err := os.ReadFile(filepath.Join(out, "out"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func tlsInputs(c teststack.Certs) buildkitconn.TLS {
	return buildkitconn.TLS{CACert: c.CA, Cert: c.ClientCert, Key: c.ClientKey}
}

func TestBuildkitHostInputOverUnixSocket(t *testing.T) {
	t.Parallel()
	s := teststack.Get(t)
	// The input wins over BUILDKIT_HOST and the builder input.
	ep := resolve(t, buildkitconn.Options{
		Host:    s.BuildkitAddr,
		Builder: "elsewhere",
		Getenv:  env(map[string]string{"BUILDKIT_HOST": "tcp://127.0.0.1:1"}),
	})
	if ep.Addr != s.BuildkitAddr || ep.Source != "buildkit-host input" || ep.Container != "" {
		t.Fatalf("resolved %+v, want the buildkit-host input %s", ep, s.BuildkitAddr)
	}
	if got := buildOn(t, s, ep); got != "built by "+t.Name() {
		t.Errorf("build output %q", got)
	}
}

func TestBuildkitHostEnvOverTCPWithMutualTLS(t *testing.T) {
	t.Parallel()
	s := teststack.Get(t)
	// BUILDKIT_HOST wins over the builder input; the TLS inputs apply to it.
	ep := resolve(t, buildkitconn.Options{
		Builder: "elsewhere",
		TLS:     tlsInputs(s.Certs),
		Getenv:  env(map[string]string{"BUILDKIT_HOST": s.TLSAddr}),
	})
	if ep.Addr != s.TLSAddr || ep.Source != "BUILDKIT_HOST" || ep.TLS.CACert != s.Certs.CA || ep.TLS.Cert != s.Certs.ClientCert {
		t.Fatalf("resolved %+v, want BUILDKIT_HOST %s with the TLS inputs", ep, s.TLSAddr)
	}
	if got := buildOn(t, s, ep); got != "built by "+t.Name() {
		t.Errorf("build output %q", got)
	}
}

func TestTCPRejectsAWrongOrMissingClientCertificate(t *testing.T) {
	t.Parallel()
	s := teststack.Get(t)
	other, err := teststack.GenerateCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for name, tls := range map[string]buildkitconn.TLS{
		"client cert from another CA": {CACert: s.Certs.CA, Cert: other.ClientCert, Key: other.ClientKey},
		"no client cert":              {CACert: s.Certs.CA},
	} {
		ep := resolve(t, buildkitconn.Options{Host: s.TLSAddr, TLS: tls})
		if c, err := buildkitconn.Connect(context.Background(), ep); err == nil {
			c.Close()
			t.Errorf("%s: connected to %s; buildkitd must refuse it", name, s.TLSAddr)
		}
	}
	// And a server certificate from a CA the client does not trust is refused too.
	ep := resolve(t, buildkitconn.Options{Host: s.TLSAddr, TLS: tlsInputs(other)})
	if c, err := buildkitconn.Connect(context.Background(), ep); err == nil {
		c.Close()
		t.Errorf("connected to %s trusting another CA", s.TLSAddr)
	}
}

// writeBuilder stores a buildx builder the way buildx does
// ($DOCKER_CONFIG/buildx/instances/<lowercased name>, JSON of store.NodeGroup).
func writeBuilder(t *testing.T, dockerConfig string, ng map[string]any) {
	t.Helper()
	dir := filepath.Join(dockerConfig, "buildx", "instances")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ng)
	if err := os.WriteFile(filepath.Join(dir, strings.ToLower(ng["Name"].(string))), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestBuilderWithRemoteDriverBuildsOverMutualTLS(t *testing.T) {
	t.Parallel()
	s := teststack.Get(t)
	cfg := t.TempDir()
	// As `docker buildx create --name remote-bk --driver remote --driver-opt cacert=...,cert=...,key=... tcp://...` stores it.
	writeBuilder(t, cfg, map[string]any{
		"Name": "remote-bk", "Driver": "remote", "Dynamic": false,
		"Nodes": []map[string]any{{
			"Name": "remote-bk0", "Endpoint": s.TLSAddr, "Platforms": nil, "Flags": nil, "Files": nil,
			"DriverOpts": map[string]string{"cacert": s.Certs.CA, "cert": s.Certs.ClientCert, "key": s.Certs.ClientKey},
		}},
	})
	ep := resolve(t, buildkitconn.Options{Builder: "remote-bk", Getenv: env(map[string]string{"DOCKER_CONFIG": cfg})})
	if ep.Addr != s.TLSAddr || !strings.Contains(ep.Source, "buildx builder remote-bk") {
		t.Fatalf("resolved %+v, want the remote builder's endpoint %s", ep, s.TLSAddr)
	}
	if got := buildOn(t, s, ep); got != "built by "+t.Name() {
		t.Errorf("build output %q", got)
	}
}

func TestBuilderWithDockerContainerDriver(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	// What docker/setup-buildx-action leaves: a docker-container builder named
	// builder-<uuid> whose node runs in container buildx_buildkit_<node>.
	node := func(endpoint string) map[string]any {
		return map[string]any{
			"Name": "builder-4f1c0", "Endpoint": endpoint, "Platforms": nil,
			"DriverOpts": map[string]string{"network": "host"}, "Flags": []string{"--allow-insecure-entitlement=network.host"}, "Files": nil,
		}
	}
	for endpoint, want := range map[string]string{
		"default":                     "docker-container://buildx_buildkit_builder-4f1c0",
		"unix:///var/run/docker.sock": "docker-container://buildx_buildkit_builder-4f1c0",
		"builders":                    "docker-container://buildx_buildkit_builder-4f1c0?context=builders",
	} {
		writeBuilder(t, filepath.Join(home, ".docker"), map[string]any{
			"Name": "Builder-4F1C", "Driver": "docker-container", "Dynamic": false, "Nodes": []map[string]any{node(endpoint)},
		})
		// No DOCKER_CONFIG: buildx's store is under $HOME/.docker, names lowercased.
		ep := resolve(t, buildkitconn.Options{Builder: "Builder-4F1C", Getenv: env(map[string]string{"HOME": home})})
		if ep.Addr != want || ep.Container != "" {
			t.Errorf("node endpoint %s: resolved %+v, want %s", endpoint, ep, want)
		}
	}
}

func TestErrorsSayWhatToDo(t *testing.T) {
	t.Parallel()
	cfg := t.TempDir()
	writeBuilder(t, cfg, map[string]any{"Name": "default", "Driver": "docker", "Nodes": []map[string]any{{"Name": "default", "Endpoint": "default"}}})
	noDocker := map[string]string{"PATH": t.TempDir(), "DOCKER_CONFIG": cfg}
	// The runner's docker CLI, if it has one, pointed at an engine that is not there.
	engineDown := map[string]string{"PATH": os.Getenv("PATH"), "DOCKER_HOST": "unix://" + filepath.Join(t.TempDir(), "none.sock"), "HOME": t.TempDir()}
	for name, c := range map[string]struct {
		opt  buildkitconn.Options
		want []string
	}{
		"nothing, no docker CLI": {buildkitconn.Options{Getenv: env(noDocker)},
			[]string{"no BuildKit daemon", "buildkit-host", "BUILDKIT_HOST", "builder", "docker/setup-buildx-action", "Docker engine", buildkitconn.Image, "no docker CLI on PATH"}},
		"nothing, engine down": {buildkitconn.Options{Getenv: env(engineDown)},
			[]string{"no BuildKit daemon", "buildkit-host", "BUILDKIT_HOST", "builder", "Docker engine"}},
		"unknown scheme": {buildkitconn.Options{Host: "http://127.0.0.1:1234"},
			[]string{"buildkit-host input", "unix://, tcp:// or docker-container://"}},
		"TLS on a unix socket": {buildkitconn.Options{Host: "unix:///run/buildkit/buildkitd.sock", TLS: buildkitconn.TLS{CACert: "/ca.pem"}},
			[]string{"buildkit-tls-*", "not a tcp:// address"}},
		"TLS without a host": {buildkitconn.Options{Builder: "x", TLS: buildkitconn.TLS{CACert: "/ca.pem"}},
			[]string{"buildkit-tls-*", "set buildkit-host"}},
		"builder not created": {buildkitconn.Options{Builder: "missing", Getenv: env(noDocker)},
			[]string{`builder "missing": not found`, "docker/setup-buildx-action"}},
		"builder name escaping the store": {buildkitconn.Options{Builder: "../../etc/passwd", Getenv: env(noDocker)},
			[]string{"not a buildx builder name"}},
		"plain TCP from BUILDKIT_HOST": {buildkitconn.Options{Getenv: env(map[string]string{"BUILDKIT_HOST": "tcp://10.1.2.3:1234"})},
			[]string{"BUILDKIT_HOST", "plain TCP to another host", "buildkit-allow-insecure-tcp"}},
		"docker driver": {buildkitconn.Options{Builder: "default", Getenv: env(noDocker)},
			[]string{"docker driver", "docker-container builder", "buildkit-host"}},
	} {
		_, err := buildkitconn.Resolve(context.Background(), c.opt)
		if err == nil {
			t.Errorf("%s: resolved, want an error", name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error lacks %q:\n%v", name, w, err)
			}
		}
	}
}

func TestStartedImageMatchesTheClientsBuildKitVersion(t *testing.T) {
	t.Parallel()
	gomod, err := os.ReadFile(filepath.Join(teststack.RepoRoot(), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github.com/moby/buildkit (v\S+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod does not require github.com/moby/buildkit")
	}
	if want := "moby/buildkit:" + string(m[1]); strings.Split(buildkitconn.Image, "@")[0] != want {
		t.Fatalf("Image = %s, want %s (the BuildKit version go.mod pins)", buildkitconn.Image, want)
	}
}

func TestStopRemovesOnlyItsOwnContainers(t *testing.T) {
	t.Parallel()
	err := buildkitconn.Stop(context.Background(), env(nil), "buildx_buildkit_builder-4f1c0")
	if err == nil || !strings.Contains(err.Error(), "not a container this action started") {
		t.Fatalf("Stop of a container it did not start: %v", err)
	}
}

// The container the action starts runs on Docker's default network unless the
// workflow opts into the host's: RUN steps must not reach the runner's localhost
// or instance metadata. No privileged container can run in this sandbox, so the
// runner's docker CLI is a script that records what it is asked to do.
func TestStartedContainerIsOffTheHostNetworkUnlessAsked(t *testing.T) {
	t.Parallel()
	for _, hostNet := range []bool{false, true} {
		bin, log := t.TempDir(), filepath.Join(t.TempDir(), "docker.log")
		script := "#!/bin/sh\necho \"$*\" >> " + log + "\ncase $1 in version) echo 20.10.24;; run) echo 0123abcd;; esac\n"
		if err := os.WriteFile(filepath.Join(bin, "docker"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		saved := ""
		starting := func(name string) error {
			if _, err := os.Stat(log); err == nil && strings.Contains(string(must(os.ReadFile(log))), "run ") {
				t.Error("the container's name was saved after docker run: a cancel in between would leak it")
			}
			saved = name
			return nil
		}
		ep := resolve(t, buildkitconn.Options{HostNetwork: hostNet, Starting: starting, Getenv: env(map[string]string{"PATH": bin + ":/usr/bin:/bin"})})
		calls, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		if saved == "" || ep.Container != saved {
			t.Errorf("saved %q for the post step, started %q", saved, ep.Container)
		}
		var run string
		for _, l := range strings.Split(string(calls), "\n") {
			if strings.HasPrefix(l, "run ") {
				run = l
			}
		}
		if !strings.HasPrefix(ep.Addr, "docker-container://ecr-build-cache-buildkit-") || !strings.HasSuffix(run, " "+buildkitconn.Image) {
			t.Fatalf("endpoint %s after docker %q", ep.Addr, run)
		}
		if strings.Contains(run, "--network host") != hostNet {
			t.Errorf("host network %v: docker %s", hostNet, run)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
