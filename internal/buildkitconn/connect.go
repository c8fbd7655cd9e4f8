package buildkitconn

import (
	"context"
	"fmt"
	"time"

	"github.com/moby/buildkit/client"
)

// ConnectTimeout bounds how long an unreachable buildkitd can hold up a run.
const ConnectTimeout = 30 * time.Second

// Connect dials buildkitd and checks that it answers, so that a wrong address
// fails now with a clear message rather than deep inside the build.
func Connect(ctx context.Context, ep Endpoint) (*client.Client, error) {
	var opts []client.ClientOpt
	if ep.TLS.CACert != "" || ep.TLS.ServerName != "" {
		opts = append(opts, client.WithServerConfig(ep.TLS.ServerName, ep.TLS.CACert))
	}
	if ep.TLS.Cert != "" {
		opts = append(opts, client.WithCredentials(ep.TLS.Cert, ep.TLS.Key))
	}
	c, err := client.New(ctx, ep.Addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to buildkitd at %s: %w", ep.Addr, err)
	}
	pctx, cancel := context.WithTimeout(ctx, ConnectTimeout)
	defer cancel()
	if _, err := c.ListWorkers(pctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("buildkitd at %s does not answer (is it running, and is the address right? set the buildkit-host input or BUILDKIT_HOST): %w", ep.Addr, err)
	}
	return c, nil
}
