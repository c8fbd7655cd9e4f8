package cachemount

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestDiscover(t *testing.T) {
	t.Parallel()
	owner := &Owner{UID: 1000, GID: 1000, Mode: 0o755}
	aptSkips := []Skip{
		{Line: 12, Target: "/deps", Why: "from= keys the cache"},
		{Line: 13, Target: "/.cargo", Why: "HOME_FROM_IMAGE"},
	}
	for _, tc := range []struct {
		name, file string
		opt        DiscoverOptions
		want       []Mount
		skips      []Skip
	}{{
		name: "one build cache per target platform; the module cache once",
		file: "go.Dockerfile",
		opt:  DiscoverOptions{BuildPlatform: "linux/amd64", TargetPlatforms: []string{"linux/amd64", "linux/arm64"}},
		want: []Mount{
			{ID: "//go/pkg/mod", Name: "/go/pkg/mod", Target: "/go/pkg/mod/", Sharing: "shared", Line: 5},
			{ID: "/gobuild-amd64", Name: "gobuild-amd64", Target: "/root/.cache/go-build", Sharing: "shared", Line: 10},
			{ID: "/gobuild-arm64", Name: "gobuild-arm64", Target: "/root/.cache/go-build", Sharing: "shared", Line: 10},
		},
	}, {
		name: "the builder's platform when none is given; the cache namespace build argument",
		file: "go.Dockerfile",
		opt:  DiscoverOptions{BuildPlatform: "linux/arm64", BuildArgs: map[string]string{"BUILDKIT_CACHE_MOUNT_NS": "team"}},
		want: []Mount{
			{ID: "team//go/pkg/mod", Name: "/go/pkg/mod", Target: "/go/pkg/mod/", Sharing: "shared", Line: 5},
			{ID: "team/gobuild-arm64", Name: "gobuild-arm64", Target: "/root/.cache/go-build", Sharing: "shared", Line: 10},
		},
	}, {
		name: "sharing, inherited ENV, ARG defaults, ownership, relative targets; from= and unknown variables skipped",
		file: "options.Dockerfile",
		opt:  DiscoverOptions{BuildPlatform: "linux/amd64"},
		want: []Mount{
			{ID: "//var/cache/apt", Name: "/var/cache/apt", Target: "/var/cache/apt", Sharing: "locked", Line: 4},
			{ID: "//var/lib/apt", Name: "/var/lib/apt", Target: "/var/lib/apt", Sharing: "locked", Line: 4},
			{ID: "/npm", Name: "npm", Target: "/root/.npm", Sharing: "shared", Owner: owner, Line: 9},
			{ID: "/relative/cache", Name: "relative/cache", Target: "relative/cache", Sharing: "private", Line: 10},
			{ID: "/with-source", Name: "with-source", Target: "/data", Sharing: "shared", Line: 11},
		},
		skips: aptSkips,
	}, {
		name: "a build argument overrides an ARG default",
		file: "options.Dockerfile",
		opt:  DiscoverOptions{BuildPlatform: "linux/amd64", BuildArgs: map[string]string{"NPM_ID": "npm-ci"}},
		want: []Mount{
			{ID: "//var/cache/apt", Name: "/var/cache/apt", Target: "/var/cache/apt", Sharing: "locked", Line: 4},
			{ID: "//var/lib/apt", Name: "/var/lib/apt", Target: "/var/lib/apt", Sharing: "locked", Line: 4},
			{ID: "/npm-ci", Name: "npm-ci", Target: "/root/.npm", Sharing: "shared", Owner: owner, Line: 9},
			{ID: "/relative/cache", Name: "relative/cache", Target: "relative/cache", Sharing: "private", Line: 10},
			{ID: "/with-source", Name: "with-source", Target: "/data", Sharing: "shared", Line: 11},
		},
		skips: aptSkips,
	}, {
		name: "ids and targets outside ASCII: BuildKit's ids, the Dockerfile's names",
		file: "unicode.Dockerfile",
		opt:  DiscoverOptions{BuildPlatform: "linux/amd64"},
		want: []Mount{
			{ID: "/gr\u00c3\u00bc\u00c3\u009fe", Name: "grüße", Target: "/cache/a", Sharing: "shared", Line: 4},
			{ID: "//cache/donn\u00c3\u00a9es", Name: "/cache/données", Target: "/cache/donn\u00c3\u00a9es", Sharing: "shared", Line: 4},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			df, err := os.ReadFile("testdata/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			got, skips, err := Discover(df, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("mounts:\n got %+v\nwant %+v", got, tc.want)
			}
			if len(skips) != len(tc.skips) {
				t.Fatalf("skips: got %+v, want %+v", skips, tc.skips)
			}
			for i, s := range skips {
				w := tc.skips[i]
				if s.Line != w.Line || s.Target != w.Target || !strings.Contains(s.Why, w.Why) {
					t.Errorf("skip %d: got %+v, want line %d, target %q, a reason naming %q", i, s, w.Line, w.Target, w.Why)
				}
			}
		})
	}
}

func TestDiscoverRejectsABrokenDockerfile(t *testing.T) {
	t.Parallel()
	if _, _, err := Discover([]byte("FROM\n"), DiscoverOptions{BuildPlatform: "linux/amd64"}); err == nil || !strings.Contains(err.Error(), "parse the Dockerfile") {
		t.Errorf("err = %v, want a parse error", err)
	}
}

func TestSelect(t *testing.T) {
	t.Parallel()
	mounts := []Mount{
		{ID: "//go/pkg/mod", Name: "/go/pkg/mod", Target: "/go/pkg/mod/"},
		{ID: "/gobuild", Name: "gobuild", Target: "/root/.cache/go-build"},
		{ID: "/npm", Name: "npm", Target: "/root/.npm", Owner: &Owner{UID: 1}},
		{ID: "/npm", Name: "npm", Target: "/home/node/.npm"},
		{ID: "/gr\u00c3\u00bc\u00c3\u009fe", Name: "grüße", Target: "/c/gr\u00c3\u00bc\u00c3\u009fe"},
	}
	for _, tc := range []struct {
		spec          []string
		want, unknown []string // want: the targets picked
	}{
		{spec: []string{"auto"}, want: []string{"/go/pkg/mod/", "/root/.cache/go-build", "/root/.npm", "/home/node/.npm", "/c/gr\u00c3\u00bc\u00c3\u009fe"}},
		{spec: []string{"AUTO"}, want: []string{"/go/pkg/mod/", "/root/.cache/go-build", "/root/.npm", "/home/node/.npm", "/c/gr\u00c3\u00bc\u00c3\u009fe"}},
		{spec: []string{"grüße", "/c/grüße/"}, want: []string{"/c/gr\u00c3\u00bc\u00c3\u009fe"}},
		{spec: []string{"/go/pkg/mod/", "/root/.cache/go-build"}, want: []string{"/go/pkg/mod/", "/root/.cache/go-build"}},
		{spec: []string{"gobuild", "/gobuild"}, want: []string{"/root/.cache/go-build"}},
		{spec: []string{"npm", "/root/.cargo"}, want: []string{"/root/.npm", "/home/node/.npm"}, unknown: []string{"/root/.cargo"}},
	} {
		got, unknown := Select(mounts, tc.spec)
		var targets []string
		for _, m := range got {
			targets = append(targets, m.Target)
		}
		if !reflect.DeepEqual(targets, tc.want) || !reflect.DeepEqual(unknown, tc.unknown) {
			t.Errorf("Select(%q) = %q, unknown %q; want %q, unknown %q", tc.spec, targets, unknown, tc.want, tc.unknown)
		}
	}
}
