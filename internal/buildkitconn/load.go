package buildkitconn

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
)

// PingDocker tells whether the run's docker CLI reaches a Docker engine.
func PingDocker(ctx context.Context, getenv func(string) string) error {
	return dockerCLI{getenv: getenv}.ping(ctx)
}

// DockerLoad starts `docker load` on the run's Docker engine (the docker CLI on
// the run's PATH, with its DOCKER_* variables) and returns its standard input,
// for a docker exporter's tar. Close waits for it: its error says what docker
// said; on success, loaded gets what it printed ("Loaded image: ...").
func DockerLoad(ctx context.Context, getenv func(string) string, loaded func(string)) (io.WriteCloser, error) {
	cmd, err := dockerCLI{getenv: getenv}.command(ctx, "load")
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("docker load: %w", err)
	}
	return &loadPipe{WriteCloser: stdin, wait: func() error {
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("docker load: %w: %s", err, strings.TrimSpace(out.String()))
		}
		loaded(strings.TrimSpace(out.String()))
		return nil
	}}, nil
}

type loadPipe struct {
	io.WriteCloser
	wait func() error
}

// Close ends the tar and waits for docker load to take it.
func (p *loadPipe) Close() error {
	if err := p.WriteCloser.Close(); err != nil {
		_ = p.wait()
		return err
	}
	return p.wait()
}
