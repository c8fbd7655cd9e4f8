package teststack

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/sethvargo/go-githubactions"

	"github.com/ecr-build-cache/ecr-build-cache/internal/ghout"
)

// ActionRun is one in-process run of the action as a runner would start it:
// inputs and GitHub variables in its own environment (never the process's, so
// tests can run in parallel), workflow commands captured, and the output and
// summary files in a temporary directory.
type ActionRun struct {
	Env         map[string]string
	OutputFile  string
	SummaryFile string
	out         syncBuffer
	w           *ghout.Writer
	once        sync.Once
}

// NewActionRun prepares a run with the given inputs (names as in action.yml) for
// a push to refs/heads/main; change Env for other events.
func NewActionRun(t testing.TB, inputs map[string]string) *ActionRun {
	t.Helper()
	return NewActionRunIn(t.TempDir(), inputs)
}

// Event sets the event name, ref and payload (written to a file, as the runner does).
func (r *ActionRun) Event(t testing.TB, name, ref, payload string) {
	t.Helper()
	if err := r.SetEvent(name, ref, payload); err != nil {
		t.Fatal(err)
	}
}

// Action builds the *githubactions.Action for this run.
func (r *ActionRun) Action() *githubactions.Action {
	return githubactions.New(
		githubactions.WithGetenv(func(k string) string { return r.Env[k] }),
		githubactions.WithWriter(r.Writer().Commands()),
	)
}

// Environ is the run's environment as the process would see it.
func (r *ActionRun) Environ() []string {
	env := make([]string, 0, len(r.Env))
	for k, v := range r.Env {
		env = append(env, k+"="+v)
	}
	return env
}

// Writer is where the run prints, as on a runner's stdout: pass it to run.Run
// with Action.
func (r *ActionRun) Writer() *ghout.Writer {
	r.once.Do(func() { r.w = ghout.NewWriter(&r.out) })
	return r.w
}

// Stdout is what the run printed: workflow commands and build progress.
func (r *ActionRun) Stdout() string { return r.out.String() }

// Outputs parses the GITHUB_OUTPUT file (name<<delimiter ... delimiter blocks).
func (r *ActionRun) Outputs(t testing.TB) map[string]string {
	t.Helper()
	o, err := r.ReadOutputs()
	if err != nil {
		t.Fatalf("read outputs: %v", err)
	}
	return o
}

// ParseOutputs parses the runner's file-command format for outputs and state.
func ParseOutputs(s string) map[string]string {
	out := map[string]string{}
	lines := strings.Split(s, "\n")
	for i := 0; i < len(lines); i++ {
		name, delim, ok := strings.Cut(lines[i], "<<")
		if !ok {
			if k, v, ok := strings.Cut(lines[i], "="); ok {
				out[k] = v
			}
			continue
		}
		var val []string
		for i++; i < len(lines) && lines[i] != delim; i++ {
			val = append(val, lines[i])
		}
		out[name] = strings.Join(val, "\n")
	}
	return out
}

// Summary returns the job summary written so far.
func (r *ActionRun) Summary(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(r.SummaryFile)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// syncBuffer is a bytes.Buffer safe for the build's concurrent progress writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
