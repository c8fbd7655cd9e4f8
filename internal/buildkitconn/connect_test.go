package buildkitconn

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
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

// A daemon that takes the connection and the call and never answers (a hung
// buildkitd) fails the run after ConnectTimeout, saying so. The test sets no
// deadline: only Connect's own can end the wait.
func TestConnectToHungDaemonNamesTheTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out ConnectTimeout (30 s); runs in make test (skipped under -short)")
	}
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		<-r.Context().Done() // gRPC over HTTP/2, never answered
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	addr := "tcp://" + srv.Listener.Addr().String()
	c, err := Connect(context.Background(), Endpoint{Addr: addr})
	if err == nil {
		c.Close()
		t.Fatalf("connected to %s", addr)
	}
	if want := "buildkitd at " + addr + " did not answer within 30s"; calls.Load() == 0 || !strings.Contains(err.Error(), want) {
		t.Errorf("%d calls; error lacks %q: %v", calls.Load(), want, err)
	}
}
