package cachemount

import (
	"runtime"
	"testing"

	"github.com/moby/buildkit/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// The helper runs where a worker lists this binary's platform, natively or
// emulated, and nowhere else.
func TestCanRun(t *testing.T) {
	t.Parallel()
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	worker := func(archs ...string) *client.WorkerInfo {
		w := &client.WorkerInfo{}
		for _, a := range archs {
			w.Platforms = append(w.Platforms, ocispecs.Platform{OS: "linux", Architecture: a})
		}
		return w
	}
	for _, tc := range []struct {
		name    string
		workers []*client.WorkerInfo
		want    bool
	}{
		{"native", []*client.WorkerInfo{worker(runtime.GOARCH)}, true},
		{"emulated", []*client.WorkerInfo{worker(other, runtime.GOARCH)}, true},
		{"second worker", []*client.WorkerInfo{worker(), worker(runtime.GOARCH)}, true},
		{"other architecture", []*client.WorkerInfo{worker(other)}, false},
		{"no workers", nil, false},
	} {
		if got := canRun(tc.workers); got != (tc.want && runtime.GOOS == "linux") {
			t.Errorf("%s: canRun = %v", tc.name, got)
		}
	}
}
