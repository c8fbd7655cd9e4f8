package run_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// The default branch's first build after a squash merge imports the merged
// pull request's cache, which its build wrote from the same tree: on a pruned
// builder every step is cached, and the default branch's cache becomes a tag
// of it. With cache-from-merged: false the build reads the default branch's
// older cache and runs the pull request's steps again.
func TestBuildAfterASquashMergeIsWarmFromThePullRequest(t *testing.T) {
	s := teststack.Get(t)
	for _, tc := range []struct {
		name        string
		fromMerged  string
		cached      int
		hitPR       bool
		exportState string
	}{
		{"merged pull request's cache", "true", 3, true, "tagged"},
		{"cache-from-merged false", "false", 1, false, "exported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := "postmerge-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			dir := gitCheckout(t)
			in := map[string]string{"context": dir, "cache-from-merged": tc.fromMerged}

			main := pushRun(t, s, repo, "main", in)
			fixtureEvent(t, main, "push", "refs/heads/main", "push_branch.json") // an ordinary commit message
			prune(t, s)
			mustRun(t, main)

			// Pull request #42 changes app.txt; its run builds refs/pull/42/merge.
			if err := os.WriteFile(filepath.Join(dir, "app.txt"), []byte("from the pull request\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			commit(t, dir)
			pr := pushRun(t, s, repo, "main", in)
			fixtureEvent(t, pr, "pull_request", "refs/pull/42/merge", "pull_request.json")
			prune(t, s)
			if o := mustRun(t, pr); !strings.Contains(o["cache-ref"], ":cache-pr-42-") {
				t.Fatalf("the pull request's run exported to %q, want its pr-42 cache\n%s", o["cache-ref"], pr.Stdout())
			}

			// The squash merge: a new commit on main with the pull request's tree.
			git(t, dir, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "--allow-empty", "-m", "Fix login redirect (#42)")
			after := pushRun(t, s, repo, "main", in)
			fixtureEvent(t, after, "push", "refs/heads/main", "push_main_squash.json")
			prune(t, s)
			o := mustRun(t, after)
			if c, n := steps(t, o); c != tc.cached || n != 3 {
				t.Errorf("the build after the merge: %d/%d steps cached, want %d/3\n%s", c, n, tc.cached, after.Stdout())
			}
			if hitPR := strings.Contains(o["cache-hit-ref"], ":cache-pr-42-"); hitPR != tc.hitPR {
				t.Errorf("cache-hit-ref %q; want the pull request's cache: %v", o["cache-hit-ref"], tc.hitPR)
			}
			if !strings.Contains(o["cache-ref"], ":cache-main-") || o["cache-export"] != tc.exportState {
				t.Errorf("cache-ref %q, cache-export %q; want main's cache %s", o["cache-ref"], o["cache-export"], tc.exportState)
			}
			if sum := after.Summary(t); strings.Contains(sum, "pr-42, merged by this commit") != (tc.fromMerged == "true") {
				t.Errorf("summary (cache-from-merged %s) names the merged pull request wrongly:\n%s", tc.fromMerged, sum)
			}
			if got := imageFile(t, s.Registry+"/"+repo+":latest", "/app/app.txt"); got != "from the pull request\n" {
				t.Errorf("/app/app.txt = %q after the merge", got)
			}
		})
	}
}
