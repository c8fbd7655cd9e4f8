// Command ecr-build-cache is a GitHub Action that builds a container image with
// BuildKit and keeps a per-branch registry cache in Amazon ECR (or any OCI registry).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sethvargo/go-githubactions"

	"github.com/ecr-build-cache/ecr-build-cache/internal/run"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx)
	stop()
	if err != nil {
		if !run.Annotated(err) {
			githubactions.Errorf("%s", err)
		}
		os.Exit(1)
	}
}

func realMain(ctx context.Context) error {
	a := githubactions.New()
	if len(os.Args) > 1 && os.Args[1] == "post" {
		return run.Post(ctx, a)
	}
	return run.Run(ctx, a, os.Stdout)
}
