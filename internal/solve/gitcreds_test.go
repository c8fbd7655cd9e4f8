package solve

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLeaksGitCredentials(t *testing.T) {
	t.Parallel()
	// actions/checkout's default: the token persisted in the repository's config.
	const checkoutConfig = "[core]\n\trepositoryformatversion = 0\n[http \"https://github.com/\"]\n\textraheader = AUTHORIZATION: basic eC1hY2Nlc3MtdG9rZW46Z2hzX3h4eA==\n"
	for _, tc := range []struct {
		name                   string
		gitConfig              string
		dockerignore, dfIgnore string
		want                   bool
	}{
		{name: "no .git", want: false},
		{name: "checkout without persisted credentials", gitConfig: "[core]\n\tbare = false\n", want: false},
		{name: "persisted token, no .dockerignore", gitConfig: checkoutConfig, want: true},
		{name: "persisted token, .git ignored", gitConfig: checkoutConfig, dockerignore: "node_modules\n.git\n", want: false},
		{name: "persisted token, only .git/objects ignored", gitConfig: checkoutConfig, dockerignore: ".git/objects\n", want: true},
		{name: "persisted token, .git ignored then re-included", gitConfig: checkoutConfig, dockerignore: ".git\n!.git/config\n", want: true},
		{name: "the Dockerfile's own ignore file wins", gitConfig: checkoutConfig, dockerignore: ".git\n", dfIgnore: "node_modules\n", want: true},
	} {
		dir := t.TempDir()
		if tc.gitConfig != "" {
			if err := os.MkdirAll(filepath.Join(dir, ".git"), 0o755); err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(dir, ".git", "config"), tc.gitConfig)
		}
		df := filepath.Join(dir, "Dockerfile")
		write(t, df, "FROM scratch\nCOPY . .\n")
		if tc.dockerignore != "" {
			write(t, filepath.Join(dir, ".dockerignore"), tc.dockerignore)
		}
		if tc.dfIgnore != "" {
			write(t, df+".dockerignore", tc.dfIgnore)
		}
		got, err := LeaksGitCredentials(dir, df)
		if err != nil || got != tc.want {
			t.Errorf("%s: LeaksGitCredentials = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
