package run_test

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ecr-build-cache/ecr-build-cache/internal/run"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// runnerCommands replays stdout as the runner reads it: a line ends at \r or
// \n, "::cmd ...::" at a line start (after white space) and "##[cmd]" anywhere
// are commands, and ::stop-commands::T suspends all of them until ::T::. It
// returns the commands the runner would act on, and whether it ends stopped.
func runnerCommands(stdout string) (cmds []string, stopped bool) {
	legacy := regexp.MustCompile(`##\[([a-z-]+)[^\]]*\]`)
	token := ""
	for _, line := range regexp.MustCompile(`\r\n|\r|\n`).Split(stdout, -1) {
		l := strings.TrimSpace(line)
		if token != "" {
			if l == "::"+token+"::" {
				token = ""
			}
			continue
		}
		switch {
		case strings.HasPrefix(l, "::stop-commands::"):
			token = strings.TrimPrefix(l, "::stop-commands::")
		case strings.HasPrefix(l, "::"):
			cmds = append(cmds, l)
		case legacy.MatchString(l):
			cmds = append(cmds, legacy.FindString(l))
		}
	}
	return cmds, token != ""
}

func TestBuildOutputCannotBecomeWorkflowCommands(t *testing.T) {
	s := teststack.Get(t)
	dir, err := filepath.Abs("testdata/hostile")
	if err != nil {
		t.Fatal(err)
	}
	prune(t, s)
	r := pushRun(t, s, "hostile", "main", map[string]string{"context": dir})
	a := r.Action()
	if err := run.Run(context.Background(), a, r.Writer(), r.Environ()); err != nil {
		t.Fatalf("run: %v\n%s", err, r.Stdout())
	}
	a.AddMask("registered-after-the-build")
	out := r.Stdout()
	if !strings.Contains(out, "injected-cr") || !strings.Contains(out, "injected-after-resume") {
		t.Fatalf("the build's output is not in the log at all:\n%s", out)
	}
	cmds, stopped := runnerCommands(out)
	for _, c := range cmds {
		if strings.Contains(c, "injected") || strings.Contains(c, "after-stop") || strings.Contains(c, "visible-word") {
			t.Errorf("the build's output became a workflow command: %q", c)
		}
	}
	if stopped {
		t.Error("the log ends with workflow commands stopped: later masks and annotations would be ignored")
	}
	if !strings.Contains(strings.Join(cmds, "\n"), "::add-mask::registered-after-the-build") {
		t.Errorf("a mask registered after the build is not seen by the runner; commands: %q", cmds)
	}
}
