// Command ecr-build-cache is a GitHub Action that builds a container image with
// BuildKit and keeps a per-branch registry cache in Amazon ECR (or any OCI registry).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sethvargo/go-githubactions"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cachemount"
	"github.com/ecr-build-cache/ecr-build-cache/internal/ghout"
	"github.com/ecr-build-cache/ecr-build-cache/internal/run"
)

func main() {
	// Inside the builder, as the cache mounts' helper (see internal/cachemount).
	if len(os.Args) > 1 && os.Args[1] == cachemount.HelperCommand {
		os.Exit(cachemount.HelperMain(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx)
	stop()
	if err != nil {
		os.Exit(1)
	}
}

// realMain runs the main or the post step. Everything reaches the runner
// through one writer that keeps the build's own output from becoming workflow
// commands.
func realMain(ctx context.Context) error {
	out := ghout.NewWriter(os.Stdout)
	a := githubactions.New(githubactions.WithWriter(out.Commands()))
	var err error
	if len(os.Args) > 1 && os.Args[1] == "post" {
		err = run.Post(ctx, a)
	} else {
		err = run.Run(ctx, a, out, os.Environ())
	}
	switch {
	case err != nil && ctx.Err() != nil:
		err = fmt.Errorf("the job was cancelled: the build stopped and nothing further is published (%w)", err)
		a.Errorf("%s", err)
	case err != nil && !run.Annotated(err): // an annotated error is on its Dockerfile line already
		a.Errorf("%s", err)
	}
	return err
}
