package buildkitconn

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// An address where no buildkitd listens fails at once, naming the address and
// the inputs that set it, well within ConnectTimeout.
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

	for name, addr := range map[string]string{
		"no socket file":    "unix://" + filepath.Join(dir, "missing.sock"),
		"stale socket file": "unix://" + stale,
		"closed tcp port":   "tcp://" + tl.Addr().String(),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			c, err := Connect(context.Background(), Endpoint{Addr: addr})
			took := time.Since(start)
			if err == nil {
				c.Close()
				t.Fatalf("connected to %s", addr)
			}
			for _, want := range []string{"buildkitd at " + addr + " does not answer", "buildkit-host", "BUILDKIT_HOST"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
			if took > ConnectTimeout/2 {
				t.Errorf("took %v to fail; the daemon is plainly not there", took)
			}
		})
	}
}
