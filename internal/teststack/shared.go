package teststack

import (
	"context"
	"os"
	"sync"
	"testing"
)

var shared struct {
	once  sync.Once
	stack *Stack
	err   error
}

// Get returns the stack shared by the tests of one package, starting it on first
// use. The package's TestMain must call Main so that the stack is stopped.
func Get(t testing.TB) *Stack {
	t.Helper()
	shared.once.Do(func() {
		shared.stack, shared.err = Start(context.Background(), Options{Log: os.Stderr})
	})
	if shared.err != nil {
		t.Fatalf("start test stack: %v", shared.err)
	}
	return shared.stack
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
