package config

import (
	"slices"
	"strings"
	"testing"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// mergeEnv is a merge step's environment: no checkout, no Dockerfile.
func mergeEnv(inputs map[string]string) map[string]string {
	env := map[string]string{
		"INPUT_REGISTRY":    "http://127.0.0.1:5000",
		"INPUT_REPOSITORY":  "team/app",
		"INPUT_TAGS":        "latest,v1",
		"INPUT_CONTEXT":     "/nonexistent/checkout",
		"GITHUB_EVENT_NAME": "push",
		"GITHUB_REF":        "refs/heads/main",
	}
	for k, v := range inputs {
		env["INPUT_"+strings.ToUpper(k)] = v
	}
	return env
}

func TestMergeDigestsNeedNoBuildInputs(t *testing.T) {
	t.Parallel()
	c, err := Read(action(mergeEnv(map[string]string{
		"merge-digests": digestA + "\nother/app@" + digestB + ",\n127.0.0.1:6000/far/app@" + digestA,
		"annotations":   "index:org.opencontainers.image.description=both",
	})), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"127.0.0.1:5000/team/app@" + digestA,
		"127.0.0.1:5000/other/app@" + digestB,
		"127.0.0.1:6000/far/app@" + digestA,
	}
	if got := c.MergeRefs(c.Registry, c.Repository); !c.Merge || !slices.Equal(got, want) {
		t.Errorf("merge %v, MergeRefs %q; want %q", c.Merge, got, want)
	}
	if c.Annotations["annotation-index.org.opencontainers.image.description"] != "both" {
		t.Errorf("annotations %q", c.Annotations)
	}
}

func TestMergePlatformsAreNormalized(t *testing.T) {
	t.Parallel()
	c, err := Read(action(mergeEnv(map[string]string{"merge-platforms": "linux/amd64, linux/arm64/v8"})), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Merge || !slices.Equal(c.MergePlatforms, []string{"linux/amd64", "linux/arm64"}) || len(c.MergeDigests) != 0 {
		t.Errorf("merge %v, platforms %q, digests %q", c.Merge, c.MergePlatforms, c.MergeDigests)
	}
}

func TestPushByDigestNeedsNoTags(t *testing.T) {
	t.Parallel()
	env := validEnv(appDir(t))
	delete(env, "INPUT_TAGS")
	env["INPUT_PUSH-BY-DIGEST"] = "true"
	env["INPUT_PLATFORMS"] = "linux/arm64"
	c, err := Read(action(env), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.PushByDigest || !c.Push || c.Merge || c.SinglePlatform() != "linux/arm64" {
		t.Errorf("push-by-digest %v, push %v, merge %v, platform %q", c.PushByDigest, c.Push, c.Merge, c.SinglePlatform())
	}
}

// Each case's problems are all reported, each saying what to do.
func TestMergeAndPushByDigestProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		env      map[string]string
		remove   []string
		want     []string
		problems int
	}{
		{
			name:     "empty hand-over",
			env:      mergeEnv(map[string]string{"merge-digests": " ,\n"}),
			want:     []string{`merge-digests: no digest in " ,\n"`, "did the build jobs push nothing?"},
			problems: 1,
		},
		{
			name:     "bad digests",
			env:      mergeEnv(map[string]string{"merge-digests": "sha256:abc, app:v1@" + digestA + ", md5:" + strings.Repeat("a", 32)}),
			want:     []string{`"sha256:abc" is not a sha256 digest`, `"app:v1@` + digestA + `" has a tag`, `"md5:`, "write sha256:<64 hex digits>"},
			problems: 3,
		},
		{
			name: "a merge builds nothing",
			env: mergeEnv(map[string]string{
				"merge-digests": digestA, "build-args": "A=1", "platforms": "linux/amd64", "push-by-digest": "true",
				"annotations": "org.example.note=x\nindex[linux/amd64]:org.example.y=z", "push": "false", "tags": "",
			}),
			want: []string{
				"build-args, platforms, push-by-digest: a merge builds nothing",
				"annotation-manifest.org.example.note); write index:KEY=VALUE",
				`annotations: "index[linux/amd64]:org.example.y" is not [manifest|index|manifest-descriptor|index-descriptor[platform]:]key (an index annotation takes no platform)`,
				"push: a merge only pushes", "tags: a merge pushes the image index under its tags",
			},
			problems: 5,
		},
		{
			name:     "both merge inputs",
			env:      mergeEnv(map[string]string{"merge-digests": digestA, "merge-platforms": "linux/amd64"}),
			want:     []string{"merge-digests and merge-platforms: give one"},
			problems: 1,
		},
		{
			name:     "merge-platforms",
			env:      mergeEnv(map[string]string{"merge-platforms": "linux/amd64,linux/amd64,not a platform!"}),
			want:     []string{"merge-platforms: linux/amd64 is listed twice", `merge-platforms: "not a platform!" is not a platform`},
			problems: 2,
		},
		{
			name: "push-by-digest",
			env: map[string]string{"INPUT_PUSH-BY-DIGEST": "true", "INPUT_PUSH": "false", "INPUT_PLATFORMS": "linux/amd64,linux/386",
				"INPUT_CACHE-REPOSITORY": "team/cache", "INPUT_TAGS": "127.0.0.1:5000/team/app:v1"},
			remove: []string{"INPUT_REPOSITORY"},
			want: []string{
				"push-by-digest: pushes the image by digest, which push: false forbids",
				"tags: push-by-digest pushes the image without tags; give the tags to the merge step",
				"platforms: push-by-digest builds one platform per step (2 given)",
				"repository: push-by-digest pushes the image to the repository input",
			},
			problems: 4,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := tc.env
			if tc.name == "push-by-digest" {
				env = validEnv(appDir(t))
				for k, v := range tc.env {
					env[k] = v
				}
			}
			for _, k := range tc.remove {
				delete(env, k)
			}
			_, err := Read(action(env), nil)
			if err == nil {
				t.Fatal("Read succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if n := strings.Count(err.Error(), "\n"); n != tc.problems {
				t.Errorf("%d problems reported, want %d:\n%v", n, tc.problems, err)
			}
		})
	}
}
