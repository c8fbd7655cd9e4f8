package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// event writes a payload where the runner would and points the environment at it.
func event(t *testing.T, env map[string]string, name, ref, fixture string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "cacheref", "testdata", fixture))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	env["GITHUB_EVENT_NAME"], env["GITHUB_REF"], env["GITHUB_EVENT_PATH"] = name, ref, p
}

// A cleanup workflow checks nothing out and pushes nothing: the build inputs
// are not needed, the repository still is.
func TestCleanupRunNeedsNoBuildInputs(t *testing.T) {
	t.Parallel()
	cleanupEnv := func() map[string]string {
		return map[string]string{
			"INPUT_REGISTRY":             "http://127.0.0.1:5000",
			"INPUT_REPOSITORY":           "team/app",
			"INPUT_CONTEXT":              filepath.Join(t.TempDir(), "not-checked-out"),
			"INPUT_CACHE-CLEANUP-SCOPES": "web, api\nWeb App",
		}
	}
	for _, tc := range []struct{ name, ref, fixture string }{
		{"delete", "refs/heads/main", "delete_branch.json"},
		{"pull_request", "refs/pull/7/merge", "pull_request_closed.json"},
		{"pull_request_target", "refs/heads/main", "pull_request_closed.json"},
	} {
		env := cleanupEnv()
		event(t, env, tc.name, tc.ref, tc.fixture)
		c, err := Read(action(env), nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !c.Cleanup || !slices.Equal(c.CleanupScopes, []string{"web, api", "Web App"}) || c.CacheRefreshAfter != 7*24*time.Hour {
			t.Errorf("%s: cleanup %v, scopes %q, refresh after %v", tc.name, c.Cleanup, c.CleanupScopes, c.CacheRefreshAfter)
		}
	}

	// cache-cleanup: false builds on those events, so the build inputs count.
	env := cleanupEnv()
	env["INPUT_CACHE-CLEANUP"] = "false"
	event(t, env, "delete", "refs/heads/main", "delete_branch.json")
	if _, err := Read(action(env), nil); err == nil || !strings.Contains(err.Error(), "context:") || !strings.Contains(err.Error(), "tags: at least one tag") {
		t.Errorf("cache-cleanup false: %v", err)
	}
	// Any other event builds as before.
	env = cleanupEnv()
	event(t, env, "pull_request", "refs/pull/42/merge", "pull_request.json")
	if _, err := Read(action(env), nil); err == nil || !strings.Contains(err.Error(), "context:") {
		t.Errorf("an open pull request without build inputs: %v", err)
	}
	// A cleanup still needs to know the repository.
	env = cleanupEnv()
	delete(env, "INPUT_REPOSITORY")
	event(t, env, "delete", "refs/heads/main", "delete_branch.json")
	if _, err := Read(action(env), nil); err == nil || !strings.Contains(err.Error(), "repository: required") {
		t.Errorf("cleanup without repository: %v", err)
	}
}

func TestCacheRefreshDays(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]time.Duration{"0": 0, "3": 72 * time.Hour, "": 7 * 24 * time.Hour} {
		env := validEnv(appDir(t))
		env["INPUT_CACHE-REFRESH-DAYS"] = v
		c, err := Read(action(env), nil)
		if err != nil || c.CacheRefreshAfter != want {
			t.Errorf("cache-refresh-days %q: %v, %v; want %v", v, c, err, want)
		}
	}
	for _, v := range []string{"-1", "1.5", "7d"} {
		env := validEnv(appDir(t))
		env["INPUT_CACHE-REFRESH-DAYS"] = v
		if _, err := Read(action(env), nil); err == nil || !strings.Contains(err.Error(), "cache-refresh-days: ") {
			t.Errorf("cache-refresh-days %q: %v", v, err)
		}
	}
}

// A build step on a delete event or a closed pull request ("build after
// merge") fails, naming cache-cleanup, instead of silently cleaning up.
func TestCleanupEventWithBuildInputsFailsNamingCacheCleanup(t *testing.T) {
	t.Parallel()
	dir := appDir(t)
	for _, tc := range []struct{ name, ref, fixture, event string }{
		{"delete", "refs/heads/main", "delete_branch.json", "on a delete event"},
		{"pull_request", "refs/pull/7/merge", "pull_request_closed.json", "on a pull_request event with action closed"},
	} {
		env := map[string]string{
			"INPUT_REPOSITORY": "my-app", "INPUT_CONTEXT": dir,
			"INPUT_TAGS": "main", "INPUT_BUILD-ARGS": "A=1", "INPUT_PUSH": "false", "INPUT_PLATFORMS": "linux/amd64",
		}
		event(t, env, tc.name, tc.ref, tc.fixture)
		_, err := Read(action(env), nil)
		want := "cache-cleanup: " + tc.event + " this step deletes the cache of the branch or pull request and builds nothing (cache-cleanup defaults to true), " +
			"but it is given build inputs (tags, push, build-args); to build on this event set cache-cleanup: false"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v\nwant %s", tc.name, err, want)
		}

		// cache-cleanup: false builds as asked.
		env["INPUT_CACHE-CLEANUP"] = "false"
		if c, err := Read(action(env), nil); err != nil || c.Cleanup {
			t.Errorf("%s with cache-cleanup false: cleanup %v, %v", tc.name, c != nil && c.Cleanup, err)
		}
	}

	// The cleanup recipe's step (repository alone), with every default
	// written out as action.yml's default: keys make the runner pass them,
	// and platforms (the cleanup reads them), is still a cleanup.
	env := map[string]string{"INPUT_REPOSITORY": "my-app", "INPUT_PLATFORMS": "linux/arm64"}
	for _, name := range buildInputs {
		env[envName(name)] = inputDefaults[name]
	}
	event(t, env, "pull_request", "refs/pull/7/merge", "pull_request_closed.json")
	if c, err := Read(action(env), nil); err != nil || !c.Cleanup {
		t.Errorf("the cleanup recipe: %v", err)
	}
}
