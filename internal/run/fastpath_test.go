package run_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// uploadRace is distribution 2.8's error for a blob upload that another upload
// of the same blob overtook.
const uploadRace = "provided digest did not match uploaded content"

// gitCheckout copies the sample app into a git work tree with it committed,
// as actions/checkout leaves a workspace.
func gitCheckout(t *testing.T) string {
	t.Helper()
	dir := appCopy(t)
	git(t, dir, "-c", "init.defaultBranch=main", "init", "-q")
	commit(t, dir)
	return dir
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func commit(t *testing.T, dir string) {
	t.Helper()
	git(t, dir, "add", "-A")
	git(t, dir, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "--allow-empty", "-m", "c")
}

// step is one build of TestOneSolveAndTheExportSkipOnARealStack.
type step struct {
	name      string
	change    string // new app.txt, "" for none
	commit    bool
	outcome   string
	fallbacks string
	cached    int
}

// On a pruned builder, one solve builds, pushes and exports, except where the
// cache's inputs promise every step: then the cache is kept without an
// export. The promise holds for what BuildKit receives: a change not
// committed, a file git ignores that an earlier step made, or a context
// outside git changes it, so those builds export in their one solve too.
func TestOneSolveAndTheExportSkipOnARealStack(t *testing.T) {
	s := teststack.Get(t)
	changed := []step{
		{"cold", "", false, "exported", "", 0},
		{"unchanged", "", false, "kept", "", 3},
		{"a change", "two\n", false, "exported", "", 1},
		{"the same again", "", false, "kept", "", 3},
	}
	for _, tc := range []struct {
		name  string
		dir   func(t *testing.T) string
		steps []step
	}{
		{"git checkout", gitCheckout, []step{
			{"cold", "", false, "exported", "", 0},
			{"unchanged", "", false, "kept", "", 3},
			{"a committed change", "two\n", true, "exported", "", 1},
			{"a change not committed", "three\n", false, "exported", "", 1},
			{"the same again", "", false, "kept", "", 3},
		}},
		{"a generated file git ignores", func(t *testing.T) string {
			dir := appCopy(t)
			if err := os.WriteFile(filepath.Join(dir, ".gitignore"), []byte("app.txt\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			git(t, dir, "-c", "init.defaultBranch=main", "init", "-q")
			commit(t, dir)
			return dir
		}, changed},
		{"outside git", appCopy, changed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := "fastpath-" + strconv.FormatInt(time.Now().UnixNano(), 36) // cold on every run, -count too
			dir := tc.dir(t)
			for _, st := range tc.steps {
				buildStep(t, s, repo, dir, st)
			}
		})
	}
}

func buildStep(t *testing.T, s *teststack.Stack, repo, dir string, tc step) {
	t.Helper()
	image := s.Registry + "/" + repo + ":latest"
	if tc.change != "" {
		if err := os.WriteFile(filepath.Join(dir, "app.txt"), []byte(tc.change), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if tc.commit {
		commit(t, dir)
	}
	prune(t, s)
	r := pushRun(t, s, repo, "main", map[string]string{"context": dir})
	o := mustRun(t, r)
	fallbacks := tc.fallbacks
	if out := r.Stdout(); tc.fallbacks == "" && tc.outcome == "exported" && strings.Contains(out, uploadRace) {
		// The image push and the cache export uploaded one blob at once and
		// distribution failed one of them: that one goes again alone, the
		// cache last (the fakes of onesolve_test.go cover both paths).
		switch {
		case strings.Contains(out, "the registry throttled or failed the image push"):
			fallbacks = "image-retry,export-solve"
		case strings.Contains(out, "the cache export lost an upload race"):
			fallbacks = "export-solve"
		}
	}
	if c, n := steps(t, o); c != tc.cached || n != 3 || o["cache-export"] != tc.outcome || o["fallbacks"] != fallbacks {
		t.Fatalf("%s: %d/%d cached, cache-export %q, fallbacks %q; want %d/3, %q, %q\n%s",
			tc.name, c, n, o["cache-export"], o["fallbacks"], tc.cached, tc.outcome, fallbacks, r.Stdout())
	}
	exportSolve := strings.HasSuffix(fallbacks, "export-solve")
	if want := strings.Count(r.Stdout(), "::group::Export cache to "); (want == 1) != exportSolve {
		t.Errorf("%s: %d export solves logged, fallbacks %q", tc.name, want, fallbacks)
	}
	if sum := r.Summary(t); strings.Contains(sum, "| Fallbacks | ") != (fallbacks != "") || !strings.Contains(sum, strings.ReplaceAll(fallbacks, ",", ", ")) {
		t.Errorf("%s: the summary's fallbacks row does not match %q:\n%s", tc.name, fallbacks, sum)
	}
	if got := imageFile(t, image, "/app/app.txt"); tc.change != "" && got != tc.change {
		t.Errorf("%s: /app/app.txt = %q, want %q", tc.name, got, tc.change)
	}
	_, m := parsedManifest(t, withHost(o["cache-ref"], s.Registry))
	if !strings.HasPrefix(m.Annotations[registry.InputsAnnotation], "sha256:") {
		t.Errorf("%s: the cache tag carries no inputs annotation: %v", tc.name, m.Annotations)
	}
}
