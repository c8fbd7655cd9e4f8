package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// profileWindow is the length of each CPU profile taken while a build runs;
// the last window outlasts the build by up to this much.
const profileWindow = 5 * time.Second

// profiler takes buildkitd CPU profiles back to back (pprof over its debug
// address) while a build runs: a build's length is not known in advance, and
// `go tool pprof` merges the windows.
type profiler struct {
	b     *bench
	name  string
	files []string // every window taken so far
	halt  chan struct{}
	done  chan error
}

func (b *bench) newProfiler(name string) *profiler { return &profiler{b: b, name: name} }

// start begins taking windows until stop.
func (p *profiler) start(ctx context.Context) {
	p.halt, p.done = make(chan struct{}), make(chan error, 1)
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: profileWindow + 30*time.Second}
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.b.s.DebugAddr, int(profileWindow.Seconds()))
	go func() {
		for {
			dir := cmp.Or(p.b.profiles, p.b.dir)
			f := filepath.Join(dir, fmt.Sprintf("%s-%02d.pprof", p.name, len(p.files)))
			_, prof, err := do(ctx, client, http.MethodGet, url, nil, http.StatusOK)
			if err == nil {
				err = os.WriteFile(f, prof, 0o644)
			}
			if err != nil {
				p.done <- fmt.Errorf("buildkitd CPU profile: %w", err)
				return
			}
			p.files = append(p.files, f)
			select {
			case <-p.halt:
				p.done <- nil
				return
			default:
			}
		}
	}()
}

// stop waits for the current window to end.
func (p *profiler) stop() error {
	close(p.halt)
	return <-p.done
}

// profileKey is the function the step-count finding is about: BuildKit
// importing one cached result's layer chain.
const profileKey = "github.com/moby/buildkit/worker/base.(*Worker).FromRemote"

// profileSummary is what a CPU profile says, for the report.
type profileSummary struct {
	header     string // pprof's duration and sample total
	top        []profileLine
	fromRemote string // profileKey's cumulative share; "" if absent
}

type profileLine struct{ flat, cum, name string }

// profileTop is how many functions the report lists.
const profileTop = 16

// summarize merges the profiles with `go tool pprof` and keeps the functions
// of BuildKit and of the stores it reads, by cumulative share.
func summarize(ctx context.Context, files []string) (*profileSummary, error) {
	args := append([]string{"tool", "pprof", "-top", "-cum", "-nodecount=400"}, files...)
	cmd := exec.CommandContext(ctx, "go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof: %w: %s", err, stderr.String())
	}
	return parseTop(string(out)), nil
}

// parseTop reads `go tool pprof -top -cum` output.
func parseTop(out string) *profileSummary {
	p := &profileSummary{}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Duration:") {
			p.header = strings.TrimSpace(l)
			continue
		}
		f := strings.Fields(l)
		// flat flat% sum% cum cum% name...
		if len(f) < 6 || !strings.HasSuffix(f[1], "%") || !strings.HasSuffix(f[4], "%") {
			continue
		}
		name := strings.Join(f[5:], " ")
		if name == profileKey {
			p.fromRemote = f[4]
		}
		if len(p.top) < profileTop && ours(name) {
			p.top = append(p.top, profileLine{flat: f[1], cum: f[4], name: name})
		}
	}
	return p
}

// ours tells BuildKit's functions and those of the stores it reads from the
// runtime's and the RPC plumbing's.
func ours(name string) bool {
	for _, p := range []string{"github.com/moby/buildkit/", "github.com/containerd/containerd/", "go.etcd.io/bbolt.", "encoding/json."} {
		if strings.HasPrefix(name, p) && !strings.Contains(name, "/internal/pipe.") && !strings.Contains(name, "grpc") {
			return true
		}
	}
	return false
}
