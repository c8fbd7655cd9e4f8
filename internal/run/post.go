package run

import (
	"context"

	"github.com/sethvargo/go-githubactions"

	"github.com/ecr-build-cache/ecr-build-cache/internal/buildkitconn"
)

// Post is the action's post step: it removes the BuildKit container the main
// step started, if any (credentials stay in memory, so there are no files). It
// never fails the job: a cleanup problem is a warning.
func Post(ctx context.Context, a *githubactions.Action) error {
	name := a.Getenv("STATE_" + buildkitconn.StateContainer)
	if name == "" {
		a.Infof("ecr-build-cache post: nothing to clean up")
		return nil
	}
	if err := buildkitconn.Stop(ctx, a.Getenv, name); err != nil {
		a.Warningf("ecr-build-cache post: could not remove BuildKit container %s: %v", name, err)
		return nil
	}
	a.Infof("ecr-build-cache post: removed BuildKit container %s", name)
	return nil
}
