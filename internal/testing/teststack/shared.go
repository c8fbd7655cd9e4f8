package teststack

import (
	"context"
	"os"
	"sync"
	"testing"
)

var shared struct {
	opt   Options
	once  sync.Once
	stack *Stack
	err   error
}

// Get returns the stack shared by the tests of one package, starting it on first
// use. The package's TestMain must call Main so that the stack is stopped.
// Under -short it skips the test: the daily loop runs without root or Debian.
func Get(t testing.TB) *Stack {
	t.Helper()
	SkipShort(t)
	shared.once.Do(func() {
		opt := shared.opt
		opt.Log = os.Stderr
		shared.stack, shared.err = Start(context.Background(), opt)
	})
	if shared.err != nil {
		t.Fatalf("start test stack: %v", shared.err)
	}
	return shared.stack
}

// SkipShort skips a test that needs the local stack or its tools (registry,
// buildkitd, dockerd, act, node) when go test runs with -short; make test runs it.
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the local stack or its tools; runs in make test (skipped under -short)")
	}
}

// MainWith is Main for a package whose shared stack needs options (act, TLS).
func MainWith(m *testing.M, opt Options) int {
	shared.opt = opt
	return Main(m)
}

// Main runs the tests and stops the shared stack if one was started.
func Main(m *testing.M) int {
	code := m.Run()
	if shared.stack != nil {
		if err := shared.stack.Close(); err != nil {
			os.Stderr.WriteString("teststack: close: " + err.Error() + "\n")
		}
	}
	return code
}
