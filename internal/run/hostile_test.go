package run_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ecr-build-cache/ecr-build-cache/internal/run"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/runnerlog"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

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
	log := runnerlog.Replay(out)
	for _, c := range log.Commands {
		if cmd := c.Name + "::" + c.Data; strings.Contains(cmd, "injected") || strings.Contains(cmd, "after-stop") || strings.Contains(cmd, "visible-word") {
			t.Errorf("the build's output became a workflow command on line %d: %q", c.Line, log.Lines[c.Line])
		}
	}
	if log.Stopped {
		t.Error("the log ends with workflow commands stopped: later masks and annotations would be ignored")
	}
	if !slices.Contains(log.Masks, "registered-after-the-build") {
		t.Errorf("a mask registered after the build is not seen by the runner; masks: %q", log.Masks)
	}
}
