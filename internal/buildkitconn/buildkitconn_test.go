package buildkitconn_test

import (
	"archive/tar"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"

	"github.com/ecr-build-cache/ecr-build-cache/internal/buildkitconn"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
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
		"builder with no store to read": {buildkitconn.Options{Builder: "ci", Getenv: env(map[string]string{"PATH": noDocker["PATH"]})},
			[]string{`builder "ci": no buildx store`, "DOCKER_CONFIG", "HOME"}},
		"BUILDX_BUILDER not created": {buildkitconn.Options{Getenv: env(map[string]string{"BUILDX_BUILDER": "missing", "DOCKER_CONFIG": cfg})},
			[]string{`$BUILDX_BUILDER: builder "missing": not found`}},
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

// fakeDocker is a docker CLI script that records its calls (one line each)
// and what `docker cp -` reads, and answers like an engine: the exact calls,
// without an engine (internal/run/daemon_real_test.go runs them on a real one).
func fakeDocker(t *testing.T) (getenv func(string) string, calls func() []string, copied string) {
	t.Helper()
	bin, dir := t.TempDir(), t.TempDir()
	log, copied := filepath.Join(dir, "docker.log"), filepath.Join(dir, "cp.tar")
	script := "#!/bin/sh\necho \"$*\" >> " + log + "\ncase $1 in version) echo 20.10.24;; create) echo 0123abcd;; cp) cat > " + copied + ";; esac\n"
	if err := os.WriteFile(filepath.Join(bin, "docker"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return env(map[string]string{"PATH": bin + ":/usr/bin:/bin"}), func() []string {
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}, copied
}

// callOf is the first recorded call of a docker command.
func callOf(calls []string, cmd string) string {
	for _, c := range calls {
		if strings.HasPrefix(c, cmd+" ") {
			return c
		}
	}
	return ""
}

// The container the action starts runs on Docker's default network unless the
// workflow opts into the host's: RUN steps must not reach the runner's localhost
// or instance metadata.
func TestStartedContainerIsOffTheHostNetworkUnlessAsked(t *testing.T) {
	t.Parallel()
	for _, hostNet := range []bool{false, true} {
		getenv, calls, _ := fakeDocker(t)
		saved := ""
		starting := func(name string) error {
			if callOf(calls(), "create") != "" {
				t.Error("the container's name was saved after docker create: a cancel in between would leak it")
			}
			saved = name
			return nil
		}
		ep := resolve(t, buildkitconn.Options{HostNetwork: hostNet, Starting: starting, Getenv: getenv})
		if saved == "" || ep.Container != saved {
			t.Errorf("saved %q for the post step, started %q", saved, ep.Container)
		}
		create := callOf(calls(), "create")
		if !strings.HasPrefix(ep.Addr, "docker-container://ecr-build-cache-buildkit-") || !strings.HasSuffix(create, " "+buildkitconn.Image) {
			t.Fatalf("endpoint %s after docker %q", ep.Addr, create)
		}
		if strings.Contains(create, "--network host") != hostNet {
			t.Errorf("host network %v: docker %s", hostNet, create)
		}
	}
}

// buildkit-image, buildkitd-config-inline and buildkitd-flags shape the
// started container as buildx's docker-container driver does: created from
// the image with the flags, the config copied in, then started.
func TestStartedContainerGetsTheImageConfigAndFlags(t *testing.T) {
	t.Parallel()
	const config = "[registry.\"docker.io\"]\n  mirrors = [\"mirror.gcr.io\"]\n"
	d, err := buildkitconn.ParseDaemon("123456789012.dkr.ecr.us-east-1.amazonaws.com/mirror/buildkit:v0.34.2", config, "--debug --allow-insecure-entitlement 'network.host'")
	if err != nil {
		t.Fatal(err)
	}
	getenv, calls, copied := fakeDocker(t)
	ep := resolve(t, buildkitconn.Options{Daemon: d, Getenv: getenv})
	all := calls()
	name := strings.TrimPrefix(ep.Addr, "docker-container://")
	want := []string{
		"create --name " + name + " --privileged " + d.Image + " --config " + buildkitconn.ConfigPath + " --debug --allow-insecure-entitlement network.host",
		"cp - " + name + ":/etc",
		"start " + name,
	}
	var got []string
	for _, c := range all {
		if !strings.HasPrefix(c, "version ") && !strings.HasPrefix(c, "exec ") {
			got = append(got, c)
		}
	}
	if !slices.Equal(got, want) || !strings.Contains(ep.Source, d.Image) {
		t.Fatalf("docker calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// What docker cp unpacks into /etc: buildkit/buildkitd.toml, the config.
	f, err := os.Open(copied)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string]string{}
	tr := tar.NewReader(f)
	for h, err := tr.Next(); err == nil; h, err = tr.Next() {
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
	}
	if files["buildkit/buildkitd.toml"] != config {
		t.Errorf("copied into /etc: %q", files)
	}

	// Without a config nothing is copied, and no --config is passed.
	getenv, calls, _ = fakeDocker(t)
	resolve(t, buildkitconn.Options{Getenv: getenv})
	if c := calls(); callOf(c, "cp") != "" || strings.Contains(callOf(c, "create"), "--config") {
		t.Errorf("no config, yet: %q", c)
	}
}

// The daemon inputs configure only the container the action starts: with any
// other daemon they would be silently ignored, so they are refused.
func TestDaemonInputsNeedTheStartedContainer(t *testing.T) {
	t.Parallel()
	d, err := buildkitconn.ParseDaemon("", "debug = true\n", "")
	if err != nil {
		t.Fatal(err)
	}
	for name, opt := range map[string]buildkitconn.Options{
		"buildkit-host": {Host: "unix:///run/buildkit/buildkitd.sock", Daemon: d},
		"BUILDKIT_HOST": {Daemon: d, Getenv: env(map[string]string{"BUILDKIT_HOST": "tcp://127.0.0.1:1234"})},
		"builder":       {Builder: "ci", Daemon: d},
	} {
		_, err := buildkitconn.Resolve(context.Background(), opt)
		if err == nil || !strings.Contains(err.Error(), "configure the BuildKit container this action starts") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A multi-node buildx builder builds on the node that serves the platforms, as
// buildx picks it: a node configured for them (buildx create --platform), else
// one whose workers serve them; platforms on different nodes are an error
// naming them, never a silent first-node build.
func TestMultiNodeBuilderPicksTheNodeServingThePlatforms(t *testing.T) {
	t.Parallel()
	s := teststack.Get(t)
	cfg := t.TempDir()
	opts := map[string]string{"cacert": s.Certs.CA, "cert": s.Certs.ClientCert, "key": s.Certs.ClientKey}
	const down = "tcp://127.0.0.1:1" // nothing listens: a node that must not be dialled
	platform := func(arch string) []map[string]string {
		return []map[string]string{{"os": "linux", "architecture": arch}}
	}
	writeBuilder(t, cfg, map[string]any{"Name": "multi", "Driver": "remote", "Nodes": []map[string]any{
		{"Name": "arm", "Endpoint": down, "Platforms": platform("arm64"), "DriverOpts": opts},
		{"Name": "amd", "Endpoint": s.TLSAddr, "Platforms": platform("amd64"), "DriverOpts": opts},
	}})
	writeBuilder(t, cfg, map[string]any{"Name": "probed", "Driver": "remote", "Nodes": []map[string]any{
		{"Name": "arm", "Endpoint": down, "Platforms": platform("arm64"), "DriverOpts": opts},
		{"Name": "any", "Endpoint": s.TLSAddr, "DriverOpts": opts},
	}})
	getenv := env(map[string]string{"DOCKER_CONFIG": cfg})
	for _, tc := range []struct {
		builder   string
		platforms []string
		node      string
	}{
		{"multi", []string{"linux/amd64"}, "amd"},
		{"multi", []string{"linux/arm64"}, "arm"},
		{"multi", nil, "arm"},                    // no platforms: the first node, as buildx
		{"probed", []string{"linux/386"}, "any"}, // configured nowhere: the node whose workers serve it
	} {
		ep := resolve(t, buildkitconn.Options{Builder: tc.builder, Platforms: tc.platforms, Getenv: getenv})
		if !strings.Contains(ep.Source, "node "+tc.node+")") {
			t.Errorf("%s %v: resolved %+v, want node %s", tc.builder, tc.platforms, ep, tc.node)
		}
		if tc.node == "amd" {
			if got := buildOn(t, s, ep); got != "built by "+t.Name() {
				t.Errorf("build output %q", got)
			}
		}
	}
	_, err := buildkitconn.Resolve(context.Background(), buildkitconn.Options{Builder: "multi", Platforms: []string{"linux/amd64", "linux/arm64"}, Getenv: getenv})
	if err == nil || !strings.Contains(err.Error(), "served by different nodes (arm: linux/arm64; amd: linux/amd64)") {
		t.Errorf("platforms on two nodes: %v", err)
	}
}
