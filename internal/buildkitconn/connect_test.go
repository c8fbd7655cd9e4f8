package buildkitconn

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// An address where no buildkitd listens fails at once, with the dial's error
// rather than after ConnectTimeout, naming the address and the inputs that set it.
func TestConnectToNoDaemonFailsFast(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	ul.Close() // the socket file stays, as after a daemon crash
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl.Close()

	for _, tc := range []struct{ name, addr, dial string }{
		{"no socket file", "unix://" + filepath.Join(dir, "missing.sock"), "no such file or directory"},
		{"stale socket file", "unix://" + stale, "connection refused"},
		{"closed tcp port", "tcp://" + tl.Addr().String(), "connection refused"},
	} {
		addr := tc.addr
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Connect(context.Background(), Endpoint{Addr: addr})
			if err == nil {
				c.Close()
				t.Fatalf("connected to %s", addr)
			}
			for _, want := range []string{"buildkitd at " + addr + " does not answer", "buildkit-host", "BUILDKIT_HOST"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
			// Failing fast is failing with the dial's own error: waiting out
			// ConnectTimeout would end in a deadline error instead.
			if errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), tc.dial) {
				t.Errorf("error lacks the dial's %q: %v", tc.dial, err)
			}
		})
	}
}
