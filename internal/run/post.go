package run

import (
	"context"

	"github.com/sethvargo/go-githubactions"
)

// Post is the action's post step. The main step writes no files and starts no
// builder (credentials stay in memory), so there is nothing to remove; it must
// never fail the job.
func Post(_ context.Context, a *githubactions.Action) error {
	a.Debugf("ecr-build-cache post: nothing to clean up")
	return nil
}
