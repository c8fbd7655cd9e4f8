package run_test

import (
	"net/http"
	"net/http/httptest"
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
// of it. A rebase merge's messages name no pull request: the GitHub API does. With cache-from-merged: false the build reads the default branch's
// older cache and runs the pull request's steps again.
func TestBuildAfterAMergeIsWarmFromThePullRequest(t *testing.T) {
	s := teststack.Get(t)
	// The GitHub API of a rebase merge: the pushed commit came in through #42.
	pulls, err := os.ReadFile("../githubapi/testdata/commit_pulls.json")
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/pulls") || r.Header.Get("Authorization") != "Bearer ghs_fake" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte(strings.Replace(string(pulls), `"number": 7,`, `"number": 42,`, 1)))
	}))
	t.Cleanup(api.Close)
	for _, tc := range []struct {
		name        string
		fromMerged  string
		afterEvent  string // the push payload after the merge
		token       string
		cached      int
		hitPR       bool
		exportState string
	}{
		{"squash merge", "true", "push_main_squash.json", "", 3, true, "tagged"},
		{"rebase merge, through the GitHub API", "true", "push_branch.json", "ghs_fake", 3, true, "tagged"},
		{"cache-from-merged false", "false", "push_main_squash.json", "", 1, false, "exported"},
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
			after := pushRun(t, s, repo, "main", map[string]string{"context": dir, "cache-from-merged": tc.fromMerged, "github-token": tc.token})
			fixtureEvent(t, after, "push", "refs/heads/main", tc.afterEvent)
			after.Env["GITHUB_API_URL"], after.Env["GITHUB_REPOSITORY"] = api.URL, "octo-org/app"
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
