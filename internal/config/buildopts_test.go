package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sethvargo/go-githubactions"

	"github.com/ecr-build-cache/ecr-build-cache/internal/solve"
)

// readWith reads validEnv plus the given inputs (names as in action.yml) and
// environment variables.
func readWith(t *testing.T, inputs map[string]string) (*Config, error) {
	t.Helper()
	env := validEnv(appDir(t))
	for k, v := range inputs {
		if strings.ToUpper(k) == k {
			env[k] = v // an environment variable
		} else {
			env[envName(k)] = v
		}
	}
	return Read(action(env), nil)
}

func mustReadWith(t *testing.T, inputs map[string]string) *Config {
	t.Helper()
	c, err := readWith(t, inputs)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestOutputsDecideThePushAsBuildPushActionDoes(t *testing.T) {
	t.Parallel()
	dest := filepath.Join(t.TempDir(), "out")
	for _, tc := range []struct {
		name        string
		inputs      map[string]string
		push, image bool
		tags        []string
		attrs       map[string]string
	}{
		{"no outputs: push defaults to true", nil, true, true, []string{"latest", "v1", "127.0.0.1:5000/other:x"}, nil},
		{"a local output alone pushes nothing", map[string]string{"outputs": "type=local,dest=" + dest}, false, false, nil, nil},
		{"a bare path is a local output", map[string]string{"outputs": dest}, false, false, nil, nil},
		{"push: true adds the registry push", map[string]string{"outputs": "type=local,dest=" + dest, "push": "true"}, true, true, nil, nil},
		{"type=registry pushes", map[string]string{"outputs": "type=registry"}, true, true, nil, map[string]string{"unpack": "false"}},
		{"type=image without push only names", map[string]string{"outputs": "type=image"}, false, true, nil, map[string]string{}},
		{"type=image's name names the image when tags is empty", map[string]string{
			"tags": "", "outputs": "type=image,name=127.0.0.1:5000/team/app,push-by-digest=true,name-canonical=true,push=true",
		}, true, true, []string{"127.0.0.1:5000/team/app"}, map[string]string{"push-by-digest": "true", "name-canonical": "true"}},
		{"tags win over type=image's name, as in buildx", map[string]string{"outputs": "type=image,name=127.0.0.1:5000/elsewhere:x,push=true"},
			true, true, []string{"latest", "v1", "127.0.0.1:5000/other:x"}, map[string]string{}},
		{"cacheonly exports no image", map[string]string{"outputs": "type=cacheonly"}, false, false, nil, nil},
	} {
		c, err := readWith(t, tc.inputs)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if c.Push != tc.push || c.OutputsOnly == tc.image {
			t.Errorf("%s: push %v outputs only %v, want push %v, an image export %v", tc.name, c.Push, c.OutputsOnly, tc.push, tc.image)
		}
		if tc.tags != nil && !reflect.DeepEqual(c.Tags, tc.tags) {
			t.Errorf("%s: tags %q, want %q", tc.name, c.Tags, tc.tags)
		}
		if tc.attrs != nil && !reflect.DeepEqual(c.ImageAttrs, tc.attrs) {
			t.Errorf("%s: image attributes %q, want %q", tc.name, c.ImageAttrs, tc.attrs)
		}
	}
}

func TestOutputsParseEachTypeLikeBuildx(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := mustReadWith(t, map[string]string{"outputs": strings.Join([]string{
		"type=local,dest=" + dir + "/local",
		"# a comment",
		`type=tar,"dest=` + dir + `/a,b.tar"`,
		"type=oci,dest=" + dir + "/layout,tar=false",
		"type=docker,dest=" + dir + "/image.tar,compression=zstd",
		"type=docker", // no dest: load
	}, "\n")})
	want := []solve.Output{
		{Type: "local", Dest: dir + "/local", Attrs: map[string]string{}},
		{Type: "tar", Dest: dir + "/a,b.tar", Attrs: map[string]string{}},
		{Type: "oci", Dest: dir + "/layout", Attrs: map[string]string{"tar": "false"}},
		{Type: "docker", Dest: dir + "/image.tar", Attrs: map[string]string{"compression": "zstd"}},
	}
	if !reflect.DeepEqual(c.Outputs, want) || !c.Load {
		t.Errorf("outputs %+v load %v,\nwant %+v and load", c.Outputs, c.Load, want)
	}
}

func TestBuildOptionsParse(t *testing.T) {
	t.Parallel()
	key := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(key, []byte("not read here"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctxDir := t.TempDir()
	c := mustReadWith(t, map[string]string{
		"ssh":              "default\ngithub=" + key + "," + key + ",other=" + key,
		"SSH_AUTH_SOCK":    "/run/agent.sock",
		"build-contexts":   "alpine=docker-image://alpine:3.20\nlib=" + ctxDir + "\ndocs=https://github.com/octo/docs.git#main",
		"secret-envs":      "npm=NPM_TOKEN,pip=PIP_TOKEN",
		"NPM_TOKEN":        "npm-token-value",
		"PIP_TOKEN":        "pip-token-value",
		"github-token":     "ghs_token",
		"load":             "true",
		"pull":             "true",
		"no-cache-filters": "deps,test",
		"allow":            "network.host,security.insecure",
		"network":          "host",
		"add-hosts":        "db:10.0.0.5,cache=[::1]",
		"shm-size":         "2g",
		"ulimit":           "nofile=1024:2048\nnproc=512",
		"cgroup-parent":    "/actions_job",
		"call":             "check,ignorestatus=true",
	})
	for name, got := range map[string]any{
		"ssh":              c.SSH,
		"build-contexts":   c.Contexts,
		"load, pull":       []bool{c.Load, c.Pull},
		"no-cache-filters": c.NoCacheFilters,
		"allow":            c.Allow,
		"network":          c.Network,
		"add-hosts":        c.AddHosts,
		"shm-size":         c.ShmSize,
		"ulimit":           c.Ulimits,
		"cgroup-parent":    c.CgroupParent,
		"call":             c.Call,
	} {
		want := map[string]any{
			"ssh": []solve.SSH{{ID: "default", Paths: []string{"/run/agent.sock"}}, {ID: "github", Paths: []string{key, key}}, {ID: "other", Paths: []string{key}}},
			"build-contexts": map[string]string{
				"alpine": "docker-image://alpine:3.20", "lib": ctxDir, "docs": "https://github.com/octo/docs.git#main",
			},
			"load, pull":       []bool{true, true},
			"no-cache-filters": []string{"deps", "test"},
			"allow":            []string{"network.host", "security.insecure"},
			"network":          "host",
			"add-hosts":        []string{"db=10.0.0.5", "cache=::1"},
			"shm-size":         int64(2 << 30),
			"ulimit":           []string{"nofile=1024:2048", "nproc=512:512"},
			"cgroup-parent":    "/actions_job",
			"call":             &solve.Call{Name: "lint", IgnoreStatus: true},
		}[name]
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", name, got, want)
		}
	}
	// secret-envs and github-token become secrets; github.com is the default host.
	for id, v := range map[string]string{"npm": "npm-token-value", "pip": "pip-token-value", "GIT_AUTH_TOKEN.github.com": "ghs_token"} {
		if string(c.Secrets[id]) != v {
			t.Errorf("secret %s = %q, want %q", id, c.Secrets[id], v)
		}
	}
	// A GIT_AUTH_TOKEN of the secrets input wins, as in build-push-action.
	c = mustReadWith(t, map[string]string{"secrets": "GIT_AUTH_TOKEN=mine", "github-token": "ghs_token", "GITHUB_SERVER_URL": "https://ghe.example.com"})
	if _, ok := c.Secrets["GIT_AUTH_TOKEN.ghe.example.com"]; ok || string(c.Secrets["GIT_AUTH_TOKEN"]) != "mine" {
		t.Errorf("secrets %q", c.Secrets)
	}
}

// compression defaults to none set (gzip for the image, zstd for a max-mode
// cache's own layers: run decides); a level alone is gzip's; a level is kept
// as given, within the compression's range.
func TestCompressionParse(t *testing.T) {
	t.Parallel()
	level := func(n int) *int { return &n }
	for _, tc := range []struct {
		inputs map[string]string
		want   solve.Compression
	}{
		{nil, solve.Compression{}},
		{map[string]string{"compression": "zstd"}, solve.Compression{Type: "zstd"}},
		{map[string]string{"compression": "zstd", "compression-level": "22"}, solve.Compression{Type: "zstd", Level: level(22)}},
		{map[string]string{"compression-level": "0"}, solve.Compression{Type: "gzip", Level: level(0)}},
		{map[string]string{"compression": "uncompressed"}, solve.Compression{Type: "uncompressed"}},
	} {
		if got := mustReadWith(t, tc.inputs).Compression; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v: compression %+v, want %+v", tc.inputs, got, tc.want)
		}
	}
}

// secret-envs' values and github-token are masked as they are read, before
// any other output; an empty variable is skipped with a warning, as secrets.
func TestSecretEnvsAndGitHubTokenAreMasked(t *testing.T) {
	t.Parallel()
	env := validEnv(appDir(t))
	env[envName("secret-envs")] = "npm=NPM_TOKEN,fork=UNSET_IN_FORKS"
	env["NPM_TOKEN"] = "npm-token-value"
	env[envName("github-token")] = "ghs_token_value"
	var out bytes.Buffer
	a := githubactions.New(githubactions.WithGetenv(func(k string) string { return env[k] }), githubactions.WithWriter(&out))
	c, err := Read(a, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Infof("%s %s", c.Secrets["npm"], c.Secrets["GIT_AUTH_TOKEN.github.com"])
	assertMaskedFirst(t, out.String(), "npm-token-value")
	assertMaskedFirst(t, out.String(), "ghs_token_value")
	if _, ok := c.Secrets["fork"]; ok || !strings.Contains(out.String(), "::warning::secret-envs: fork: UNSET_IN_FORKS is empty or unset") {
		t.Errorf("an unset variable: secrets %v, output:\n%s", c.Secrets, out.String())
	}
}

func TestBuildOptionsProblems(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		inputs map[string]string
		want   string
	}{
		{map[string]string{"ssh": "default"}, "ssh: default uses the runner's ssh-agent, but SSH_AUTH_SOCK is not set"},
		{map[string]string{"ssh": "key=/nonexistent/key"}, `ssh: key: "/nonexistent/key" cannot be read`},
		{map[string]string{"ssh": "a=" + file + "\na=" + file}, `ssh: id "a" is given twice`},
		{map[string]string{"build-contexts": "base=target:other"}, "target: contexts are a docker buildx bake feature"},
		{map[string]string{"build-contexts": "lib=/nonexistent"}, `build-contexts: lib: "/nonexistent" is not a directory`},
		{map[string]string{"build-contexts": "Bad Name=" + dir}, "is not a context name"},
		{map[string]string{"build-contexts": "img=docker-image://app:bad tag"}, "is not an image reference"},
		{map[string]string{"build-contexts": "img=oci-layout://" + dir}, "is not an OCI layout directory"},
		{map[string]string{"secret-envs": "A=A_ENV,\nnovalue"}, `secret-envs: line 2: an entry is not id=ENV_VAR`},
		{map[string]string{"secret-envs": "npm="}, `secret-envs: npm: no ENV_VAR after the '='`},
		{map[string]string{"secrets": "npm=x", "secret-envs": "npm=NPM", "NPM": "y"}, `secrets: id "npm" is given twice`},
		{map[string]string{"outputs": "type=s3,bucket=x"}, `outputs: line 1: type "s3": use one of`},
		{map[string]string{"outputs": "type=tar,dest=-"}, "dest=- would write the image into the step's log"},
		{map[string]string{"outputs": "type=local"}, "type=local: dest is required"},
		{map[string]string{"outputs": "type=local,dest=" + file}, "is a file, not a directory"},
		{map[string]string{"outputs": "type=tar,dest=" + dir}, "is a directory; give the file to write"},
		{map[string]string{"outputs": "type=image\ntype=registry"}, "a second type=image/registry output"},
		{map[string]string{"outputs": "type=image,push=false", "push": "true"}, "push=false, but the push input is true"},
		{map[string]string{"outputs": "type=registry", "tags": ""}, "tags: at least one tag is needed to push"},
		{map[string]string{"load": "true", "platforms": "linux/amd64,linux/arm64"}, "load: the docker exporter cannot load an image index"},
		{map[string]string{"load": "true", "provenance": "true"}, "load: the docker exporter cannot load an image index"},
		{map[string]string{"allow": "root"}, `allow: "root": unknown entitlement root`},
		{map[string]string{"network": "bridge"}, `network: "bridge" is not default, host or none`},
		{map[string]string{"add-hosts": "db"}, `add-hosts: "db": not host:ip`},
		{map[string]string{"add-hosts": "db:host-gateway"}, "host-gateway is resolved by a Docker engine's builder only"},
		{map[string]string{"add-hosts": "db:10.0.0.300"}, `"10.0.0.300" is not an IP address`},
		{map[string]string{"shm-size": "lots"}, `shm-size: "lots" is not a size`},
		{map[string]string{"ulimit": "nofile"}, `ulimit: "nofile"`},
		{map[string]string{"call": "lint-me"}, `call: "lint-me" is not one of build, check, outline, targets`},
		{map[string]string{"call": "check,format=yaml"}, `call: format="yaml" is not json or text`},
		{map[string]string{"buildkit-image": "Not/An:Image:ref"}, "buildkit-image: "},
		{map[string]string{"buildkitd-config-inline": "[registry.\"docker.io\"\nmirrors = 1"}, "buildkitd-config-inline: not TOML: line 1"},
		{map[string]string{"buildkitd-flags": "--debug 'unclosed"}, "buildkitd-flags: "},
		{map[string]string{"compression": "brotli"}, `compression: "brotli" is not gzip, zstd or uncompressed`},
		{map[string]string{"compression": "estargz"}, `compression: "estargz" is not gzip, zstd or uncompressed`},
		{map[string]string{"compression-level": "10"}, `compression-level: "10" is not a whole number from 0 to 9 (gzip's levels)`},
		{map[string]string{"compression": "zstd", "compression-level": "23"}, `compression-level: "23" is not a whole number from 0 to 22 (zstd's levels)`},
		{map[string]string{"compression": "zstd", "compression-level": "fast"}, `compression-level: "fast" is not a whole number`},
		{map[string]string{"compression": "uncompressed", "compression-level": "3"}, "compression-level: \"3\": uncompressed layers take no level"},
		{map[string]string{"outputs": "type=registry,compression=zstd"}, "outputs: the type=image entry sets compression; use the compression and compression-level inputs"},
		{map[string]string{"outputs": "type=image,force-compression=true"}, "outputs: the type=image entry sets force-compression"},
		{map[string]string{"buildkitd-flags": "--addr tcp://0.0.0.0:1234"}, "buildkitd-flags: --addr: the action reaches the container's buildkitd on its default socket"},
	} {
		_, err := readWith(t, tc.inputs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: want an error with %q, got %v", tc.inputs, tc.want, err)
		}
	}
}
