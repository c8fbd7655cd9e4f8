package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-githubactions"
)

// action builds an Action whose environment is env alone.
func action(env map[string]string) *githubactions.Action {
	return githubactions.New(
		githubactions.WithGetenv(func(k string) string { return env[k] }),
		githubactions.WithWriter(&bytes.Buffer{}),
	)
}

func appDir(t *testing.T) string {
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

func validEnv(dir string) map[string]string {
	return map[string]string{
		"INPUT_REGISTRY":      "http://127.0.0.1:5000",
		"INPUT_REPOSITORY":    "team/app",
		"INPUT_TAGS":          "latest, v1\n# a comment\n\n127.0.0.1:5000/other:x",
		"INPUT_CONTEXT":       dir,
		"INPUT_BUILD-ARGS":    "A=1\nB=x=y,z",
		"INPUT_BUILDKIT-HOST": "unix:///run/buildkit/buildkitd.sock",
		"GITHUB_EVENT_NAME":   "push",
		"GITHUB_REF":          "refs/heads/main",
	}
}

func TestReadValid(t *testing.T) {
	t.Parallel()
	dir := appDir(t)
	c, err := Read(action(validEnv(dir)), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.1:5000/team/app:latest", "127.0.0.1:5000/team/app:v1", "127.0.0.1:5000/other:x"}
	if got := c.ImageRefs(c.Registry); !reflect.DeepEqual(got, want) {
		t.Errorf("ImageRefs = %q, want %q", got, want)
	}
	if !c.Insecure || c.Registry != "127.0.0.1:5000" || c.CacheRepository != "team/app" || c.CacheMode != "max" || c.CacheTagPrefix != "cache" {
		t.Errorf("defaults: %+v", c)
	}
	if c.BuildArgs["B"] != "x=y,z" || c.BuildArgs["A"] != "1" {
		t.Errorf("build-args = %q", c.BuildArgs)
	}
	if c.CacheExportTimeout != 10*time.Minute {
		t.Errorf("cache-export-timeout default %v", c.CacheExportTimeout)
	}
	if c.Dockerfile != filepath.Join(dir, "Dockerfile") || !c.Push {
		t.Errorf("file %q push %v", c.Dockerfile, c.Push)
	}
}

func TestReadReportsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"INPUT_REGISTRY":             "not a host",
		"INPUT_REPOSITORY":           "Team/App",
		"INPUT_TAGS":                 "bad tag, -dash",
		"INPUT_PUSH":                 "yes please",
		"INPUT_CONTEXT":              "/nonexistent/context",
		"INPUT_BUILD-ARGS":           "NOEQUALS",
		"INPUT_CACHE-MODE":           "maximum",
		"INPUT_CACHE-EXPORT":         "sometimes",
		"INPUT_CACHE-TAG-PREFIX":     "-x",
		"INPUT_CACHE-FROM":           "UPPER/Case:ref",
		"INPUT_USERNAME":             "only-user",
		"INPUT_BUILDKIT-HOST":        "ftp://x",
		"INPUT_BUILDKIT-TLS-CERT":    "/nonexistent/cert.pem",
		"INPUT_PLATFORMS":            "linux/amd64,not a platform!!",
		"INPUT_CACHE-EXPORT-TIMEOUT": "forever",
		"INPUT_SECRETS":              "no-equals-sign",
		"INPUT_SECRET-FILES":         "ssh=/nonexistent/key",
		"INPUT_ANNOTATIONS":          "bogus:key=v",
		"INPUT_PROVENANCE":           "maybe",
	}
	_, err := Read(action(env), nil)
	if err == nil {
		t.Fatal("no error for bad inputs")
	}
	msg := err.Error()
	for _, want := range []string{
		`registry: "not a host"`,
		`repository: "Team/App"`,
		`tags: "bad tag"`,
		`tags: "-dash"`,
		`push: "yes please" is not a boolean`,
		`context: "/nonexistent/context" is not a directory`,
		`file: Dockerfile "/nonexistent/context/Dockerfile" not found`,
		`build-args: line 1 has no '='`,
		`cache-mode: "maximum"`,
		`cache-export:`,
		`cache-tag-prefix "-x"`,
		`cache-from: "UPPER/Case:ref"`,
		`username and password: give both`,
		`buildkit-host: "ftp://x"`,
		`buildkit-tls-cert: "/nonexistent/cert.pem" cannot be read`,
		`buildkit-tls-cert and buildkit-tls-key`,
		`platforms: "not a platform!!" is not a platform`,
		`cache-export-timeout: "forever"`,
		`secrets: line 1 is not id=value`,
		`secret-files: ssh: cannot read "/nonexistent/key"`,
		`annotations: "bogus:key"`,
		`provenance: "maybe"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

func TestReadFallsBackToEnvironment(t *testing.T) {
	t.Parallel()
	env := validEnv(appDir(t))
	// No buildkit-host: buildkitconn falls back to BUILDKIT_HOST, a builder or Docker.
	delete(env, "INPUT_BUILDKIT-HOST")
	env["AWS_DEFAULT_REGION"] = "eu-west-1"
	delete(env, "INPUT_REGISTRY") // ECR: the registry comes from the token
	c, err := Read(action(env), nil)
	if err != nil || c.BuildkitHost != "" || c.Registry != "" || c.AWSRegion != "eu-west-1" {
		t.Fatalf("fallbacks: %+v, %v", c, err)
	}
	env["AWS_REGION"] = "us-west-2"
	if c, _ := Read(action(env), nil); c.AWSRegion != "us-west-2" {
		t.Errorf("AWS_REGION should win over AWS_DEFAULT_REGION, got %q", c.AWSRegion)
	}
	env["INPUT_AWS-REGION"] = "ap-south-1"
	if c, _ := Read(action(env), nil); c.AWSRegion != "ap-south-1" {
		t.Errorf("the aws-region input should win, got %q", c.AWSRegion)
	}
}

// Each invalid input alone is reported, naming the input and the bad value,
// and nothing else is (the message lists problems, not echoes of one).
func TestReadRejectsEachBadInputAlone(t *testing.T) {
	t.Parallel()
	dir := appDir(t)
	empty := t.TempDir()                     // a context without a Dockerfile
	cert := filepath.Join(dir, "Dockerfile") // any readable file
	for _, tc := range []struct {
		inputs map[string]string
		want   []string
	}{
		{map[string]string{"cache-mode": "maximum"}, []string{`cache-mode: "maximum" is not max or min`}},
		{map[string]string{"platforms": "linux/amd64,garbage!!"}, []string{`platforms: "garbage!!" is not a platform`}},
		{map[string]string{"tags": "latest, release 1"}, []string{`tags: "release 1" is not a valid tag`}},
		{map[string]string{"build-args": "A=1\nNOEQUALS\nB=2"}, []string{`build-args: line 2 has no '='`}},
		{map[string]string{"context": dir + "/missing"}, []string{
			`context: "` + dir + `/missing" is not a directory`, `file: Dockerfile "` + dir + `/missing/Dockerfile" not found`}},
		{map[string]string{"context": empty}, []string{`file: Dockerfile "` + empty + `/Dockerfile" not found`}},
		{map[string]string{"file": dir + "/Nope.Dockerfile"}, []string{`file: Dockerfile "` + dir + `/Nope.Dockerfile" not found`}},
		{map[string]string{"buildkit-tls-ca-cert": "/nonexistent/ca.pem"}, []string{`buildkit-tls-ca-cert: "/nonexistent/ca.pem" cannot be read`}},
		{map[string]string{"buildkit-tls-cert": cert, "buildkit-tls-key": "/nonexistent/key.pem"}, []string{`buildkit-tls-key: "/nonexistent/key.pem" cannot be read`}},
		{map[string]string{"tags": "latest\nv1,\"unterminated\nv2"}, []string{`tags: line 2: the quote that opens there is never closed`}},
		{map[string]string{"cache-from": "x.example/app:extra\ntype=registry,ref=x.example/app:cache,mode=max"}, []string{
			`cache-from: "type=registry" is build-push-action's raw form (type=registry,ref=...); this action derives the cache ref`}},
		{map[string]string{"repository": "", "tags": "v1, x.example/app:v1"}, []string{
			`tags: bare tag "v1" needs the repository input`, "repository: required (the image repository, e.g. my-app) unless every tag is a full reference"}},
		{map[string]string{"repository": "Team/App"}, []string{
			`repository: "Team/App" is not a valid repository name`, `cache-repository: "Team/App" is not a valid repository name`}},
	} {
		env := validEnv(dir)
		for k, v := range tc.inputs {
			env["INPUT_"+strings.ToUpper(k)] = v
		}
		_, err := Read(action(env), nil)
		if err == nil {
			t.Errorf("%q: accepted", tc.inputs)
			continue
		}
		msg := err.Error()
		if n := fmt.Sprintf("(%d problems)", len(tc.want)); !strings.Contains(msg, n) {
			t.Errorf("%q: want %s:\n%s", tc.inputs, n, msg)
		}
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%q: error lacks %q:\n%s", tc.inputs, w, msg)
			}
		}
	}
}

// Without repository, full-reference tags name the cache repository (the first
// tag's) and, when the registry input is empty, the registry (its host).
func TestReadRepositoryFromTags(t *testing.T) {
	t.Parallel()
	const ecrHost = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
	for _, tc := range []struct {
		name                string
		inputs              map[string]string
		registry, cacheRepo string
		insecure            bool
	}{
		{"ECR tags", map[string]string{"tags": ecrHost + "/team/app:v1\n" + ecrHost + "/team/app:latest"}, ecrHost, "team/app", false},
		{"first tag wins", map[string]string{"tags": "127.0.0.1:5000/first:v1, ghcr.io/octo/second:v1"}, "127.0.0.1:5000", "first", false},
		{"Docker Hub short form", map[string]string{"tags": "octo/app:v1"}, "docker.io", "octo/app", false},
		{"registry input kept", map[string]string{"tags": ecrHost + "/team/app:v1", "registry": "http://127.0.0.1:5000"}, "127.0.0.1:5000", "team/app", true},
		{"cache-repository input kept", map[string]string{"tags": ecrHost + "/team/app:v1", "cache-repository": "team/cache"}, "", "team/cache", false},
	} {
		env := validEnv(appDir(t))
		delete(env, "INPUT_REPOSITORY")
		delete(env, "INPUT_REGISTRY")
		for k, v := range tc.inputs {
			env[envName(k)] = v
		}
		c, err := Read(action(env), nil)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if c.Registry != tc.registry || c.CacheRepository != tc.cacheRepo || c.Insecure != tc.insecure {
			t.Errorf("%s: registry %q cache repository %q insecure %v; want %q %q %v", tc.name, c.Registry, c.CacheRepository, c.Insecure, tc.registry, tc.cacheRepo, tc.insecure)
		}
	}
}

// Inputs that would send credentials or the build session in clear are
// refused, and the trust opt-ins are read.
func TestReadTransportAndTrust(t *testing.T) {
	t.Parallel()
	dir := appDir(t)
	ca := filepath.Join(dir, "Dockerfile") // any readable file
	for _, tc := range []struct {
		inputs map[string]string
		want   string // "" = accepted
	}{
		{map[string]string{"registry": "http://123456789012.dkr.ecr.us-east-1.amazonaws.com"}, `registry: "http://123456789012.dkr.ecr.us-east-1.amazonaws.com" is an ECR registry over plain HTTP`},
		{map[string]string{"registry": "http://123456789012.dkr-ecr.us-east-1.on.aws:443/"}, "is an ECR registry over plain HTTP"},
		{map[string]string{"registry": "https://123456789012.dkr.ecr.us-east-1.amazonaws.com"}, ""},
		{map[string]string{"registry": "http://registry.internal:5000"}, ""},
		{map[string]string{"buildkit-host": "tcp://10.0.0.5:1234"}, `buildkit-host: "tcp://10.0.0.5:1234" is plain TCP to another host`},
		{map[string]string{"buildkit-host": "tcp://buildkitd.ci.internal:1234"}, `buildkit-host: "tcp://buildkitd.ci.internal:1234" is plain TCP to another host`},
		{map[string]string{"buildkit-host": "tcp://10.0.0.5:1234", "buildkit-allow-insecure-tcp": "true"}, ""},
		{map[string]string{"buildkit-host": "tcp://127.0.0.1:1234", "buildkit-allow-insecure-tcp": "sure"}, `buildkit-allow-insecure-tcp: "sure" is not a boolean`},
		{map[string]string{"buildkit-host": "tcp://10.0.0.5:1234", "buildkit-tls-ca-cert": ca}, ""},
		{map[string]string{"buildkit-host": "tcp://10.0.0.5:1234", "buildkit-tls-server-name": "buildkitd"}, ""},
		{map[string]string{"buildkit-host": "tcp://127.0.0.1:1234"}, ""},
		{map[string]string{"buildkit-host": "tcp://127.8.0.2:1234"}, ""},
		{map[string]string{"buildkit-host": "tcp://[::1]:1234"}, ""},
		{map[string]string{"buildkit-host": "tcp://localhost:1234"}, ""},
		{map[string]string{"buildkit-host": "tcp://"}, `buildkit-host: "tcp://" is not a tcp://host:port address`},
		{map[string]string{"untrusted-push": "yes"}, `untrusted-push: "yes" is not a boolean`},
		{map[string]string{"untrusted-secrets": "1"}, ""},
		{map[string]string{"untrusted-entitlements": "true", "github-token": "ghs_x"}, ""},
		{map[string]string{"untrusted-entitlements": "privileged"}, `untrusted-entitlements: "privileged" is not a boolean`},
	} {
		env := validEnv(dir)
		for k, v := range tc.inputs {
			env[envName(k)] = v
		}
		c, err := Read(action(env), nil)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.inputs, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "(1 problems)")):
			t.Errorf("%q: want the one problem %q, got %v", tc.inputs, tc.want, err)
		}
		if tc.inputs["untrusted-secrets"] == "1" && (c == nil || !c.UntrustedSecrets || c.UntrustedPush) {
			t.Errorf("untrusted-secrets: 1 read as %+v", c)
		}
		if tc.inputs["untrusted-entitlements"] == "true" && (c == nil || !c.UntrustedEntitlements || c.UntrustedSecrets || c.GitHubToken != "ghs_x") {
			t.Errorf("untrusted-entitlements: true read as %+v", c)
		}
	}
}

func TestAnnotationAttr(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"org.example.note":                     "annotation-manifest.org.example.note",
		"index:org.opencontainers.image.title": "annotation-index.org.opencontainers.image.title",
		"manifest[linux/arm64]:note":           "annotation-manifest[linux/arm64].note",
		"manifest-descriptor:note":             "annotation-manifest-descriptor.note",
		"index-descriptor:note":                "annotation-index-descriptor.note",
		"bogus:key":                            "",
		"manifest[not a platform]:key":         "",
		"index:":                               "",
		"index[linux/amd64]:note":              "",
	} {
		got, err := annotationAttr(in)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("annotationAttr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
