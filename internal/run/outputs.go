package run

import (
	"context"
	"fmt"
	"io"
	"maps"
	"strings"

	"github.com/moby/buildkit/client"

	"github.com/ecr-build-cache/ecr-build-cache/internal/buildkitconn"
	"github.com/ecr-build-cache/ecr-build-cache/internal/solve"
)

// outputs are the build's further outputs: the outputs input's files and
// directories, and load's docker load into the runner's Docker engine. OCI and
// docker outputs are named like the image, as buildx names them.
func (r *runner) outputs(ctx context.Context) ([]solve.Output, error) {
	names := strings.Join(r.imageNames(), ",")
	named := func(attrs map[string]string) map[string]string {
		attrs = maps.Clone(attrs)
		if attrs == nil {
			attrs = map[string]string{}
		}
		if attrs["name"] == "" && names != "" {
			attrs["name"] = names
		}
		return attrs
	}
	var outs []solve.Output
	for _, o := range r.image.Outputs {
		if o.Type == client.ExporterOCI || o.Type == client.ExporterDocker {
			o.Attrs = named(o.Attrs)
		}
		outs = append(outs, o)
	}
	if !r.image.Load {
		return outs, nil
	}
	if err := buildkitconn.PingDocker(ctx, r.a.Getenv); err != nil {
		return nil, fmt.Errorf("load: no Docker engine to load the image into (GitHub-hosted runners have one): %w", err)
	}
	return append(outs, solve.Output{Type: client.ExporterDocker, Attrs: named(nil), Stream: func() (io.WriteCloser, error) {
		return buildkitconn.DockerLoad(ctx, r.a.Getenv, func(said string) {
			// docker's words name the image, which the workflow chose: still the build's output.
			fmt.Fprintf(r.out, "loaded into the runner's Docker engine: %s\n", said)
		})
	}}), nil
}

// imageNames are the tags as full references; without a registry (an offline
// untrusted run) only those given as full references.
func (r *runner) imageNames() []string {
	if r.host != "" {
		return r.image.ImageRefs(r.host)
	}
	var out []string
	for _, t := range r.image.ImageRefs("") {
		if !strings.HasPrefix(t, "/") { // a bare tag: "/<repository>:<tag>" without a registry
			out = append(out, t)
		}
	}
	return out
}
