package run_test

import (
	"context"
	"strings"
	"testing"

	"github.com/ecr-build-cache/ecr-build-cache/internal/run"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

func TestPostNeverFailsTheJob(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		state map[string]string
		want  string
	}{
		"main step started nothing": {nil, "ecr-build-cache post: nothing to clean up"},
		// The container is gone, or docker is: a warning, not a failed job.
		"container cannot be removed": {
			map[string]string{"STATE_buildkit_container": "ecr-build-cache-buildkit-0123456789ab", "PATH": t.TempDir()},
			"::warning::ecr-build-cache post: could not remove BuildKit container ecr-build-cache-buildkit-0123456789ab",
		},
		// State is only ever this action's, but never remove a container it did not name.
		"foreign container name": {
			map[string]string{"STATE_buildkit_container": "buildx_buildkit_builder0"},
			"not a container this action started",
		},
	} {
		r := teststack.NewActionRun(t, nil)
		for k, v := range c.state {
			r.Env[k] = v
		}
		if err := run.Post(context.Background(), r.Action()); err != nil {
			t.Errorf("%s: post failed: %v", name, err)
		}
		if !strings.Contains(r.Stdout(), c.want) {
			t.Errorf("%s: post printed %q, want %q", name, r.Stdout(), c.want)
		}
	}
}
