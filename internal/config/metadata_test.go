package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// metadataEnv is a step given docker/metadata-action's tags, labels and
// annotations outputs (testdata/metadata-action/<fixture>) as its inputs.
func metadataEnv(t *testing.T, fixture string, inputs map[string]string) map[string]string {
	t.Helper()
	env := map[string]string{"INPUT_CONTEXT": appDir(t), "GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/main"}
	for _, out := range []string{"tags", "labels", "annotations"} {
		b, err := os.ReadFile(filepath.Join("testdata", "metadata-action", fixture, out))
		if err != nil {
			t.Fatal(err)
		}
		env[envName(out)] = string(b)
	}
	for k, v := range inputs {
		env[envName(k)] = v
	}
	return env
}

func TestMetadataActionTagsGoToTheTargetRegistry(t *testing.T) {
	t.Parallel()
	const ecrHost = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
	for _, tc := range []struct {
		name, fixture string
		inputs        map[string]string
		registry      string // what ImageRefs is given (the ECR token's host when the input is empty)
		want          []string
	}{
		{"images: my-app with repository: my-app goes to ECR", "short-name", map[string]string{"repository": "my-app"}, ecrHost,
			[]string{ecrHost + "/my-app:main", ecrHost + "/my-app:sha-860c190"}},
		{"the same with a registry input", "short-name", map[string]string{"repository": "my-app", "registry": "http://127.0.0.1:5000"}, "127.0.0.1:5000",
			[]string{"127.0.0.1:5000/my-app:main", "127.0.0.1:5000/my-app:sha-860c190"}},
		{"images with the ECR host, no repository", "ecr-name", nil, ecrHost,
			[]string{ecrHost + "/my-app:main", ecrHost + "/my-app:sha-860c190"}},
		// As before: without repository and registry, the first tag's registry is the target.
		{"no repository nor registry: Docker Hub is the target", "short-name", nil, "", []string{"my-app:main", "my-app:sha-860c190"}},
		{"Docker Hub as the registry input takes a short name as meant", "short-name", map[string]string{"repository": "other", "registry": "docker.io"}, "docker.io",
			[]string{"my-app:main", "my-app:sha-860c190"}},
	} {
		c, err := Read(action(metadataEnv(t, tc.fixture, tc.inputs)), nil)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := c.ImageRefs(tc.registry); !slices.Equal(got, tc.want) {
			t.Errorf("%s: image refs %q, want %q", tc.name, got, tc.want)
		}
		// Every label and annotation arrives, the empty description included.
		if len(c.Labels) != 8 || c.Labels["org.opencontainers.image.revision"] != "860c1904a1ce19322e91ac35af1ab07466440c37" {
			t.Errorf("%s: labels %q", tc.name, c.Labels)
		}
		if v, ok := c.Annotations["annotation-manifest.org.opencontainers.image.description"]; len(c.Annotations) != 8 || !ok || v != "" ||
			c.Annotations["annotation-manifest.org.opencontainers.image.created"] != "2026-12-07T01:30:12.345Z" {
			t.Errorf("%s: annotations %q", tc.name, c.Annotations)
		}
	}
}

func TestShortNameThatMeansDockerHubIsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		inputs map[string]string
		want   []string // in the one error
	}{
		{"another repository, ECR", map[string]string{"repository": "other"}, []string{
			"(2 problems)",
			`tags: "my-app:main" names no registry, so it means Docker Hub (docker.io/library/my-app:main), but this build pushes to the ECR registry of the AWS credentials`,
			`write "main" or "other:main" for repository other`,
			`write "docker.io/my-app:sha-860c190" to push to Docker Hub on purpose`,
		}},
		{"no repository, another registry", map[string]string{"registry": "ghcr.io"}, []string{
			`but this build pushes to registry ghcr.io`,
			`set repository: my-app and write "main"`,
		}},
		{"no repository, the first tag's registry", map[string]string{"tags": "ghcr.io/octo/app:v1\nmy-app:main"}, []string{
			`"my-app:main" names no registry`, "but this build pushes to registry ghcr.io",
		}},
		{"another registry", map[string]string{"repository": "other", "registry": "ghcr.io"}, []string{
			"but this build pushes to registry ghcr.io",
		}},
	} {
		_, err := Read(action(metadataEnv(t, "short-name", tc.inputs)), nil)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v\nwant it to say %s", tc.name, err, w)
			}
		}
	}
	// Docker Hub written out is taken as meant, whatever the registry.
	env := metadataEnv(t, "short-name", map[string]string{"repository": "other"})
	env["INPUT_TAGS"] = "docker.io/my-app:main\nindex.docker.io/team/app:v1"
	if c, err := Read(action(env), nil); err != nil || !slices.Equal(c.ImageRefs("r.example"), []string{"docker.io/my-app:main", "index.docker.io/team/app:v1"}) {
		t.Errorf("explicit docker.io: %v", err)
	}
}
