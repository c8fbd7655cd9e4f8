package teststack

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
)

// NewActionRunIn prepares a run like NewActionRun, with its files in dir, for
// programs that have no testing.TB (the demo, the benchmarks).
func NewActionRunIn(dir string, inputs map[string]string) *ActionRun {
	r := &ActionRun{
		OutputFile:  filepath.Join(dir, "output"),
		SummaryFile: filepath.Join(dir, "summary.md"),
		Env: map[string]string{
			"GITHUB_ACTIONS":    "true",
			"GITHUB_EVENT_NAME": "push",
			"GITHUB_REF":        "refs/heads/main",
			"GITHUB_REPOSITORY": "octo/app",
		},
	}
	r.Env["GITHUB_OUTPUT"] = r.OutputFile
	r.Env["GITHUB_STEP_SUMMARY"] = r.SummaryFile
	for k, v := range inputs {
		r.Env["INPUT_"+strings.ToUpper(strings.ReplaceAll(k, " ", "_"))] = v
	}
	return r
}

// SetEvent sets the event name, ref and payload (written to a file, as the runner does).
func (r *ActionRun) SetEvent(name, ref, payload string) error {
	r.Env["GITHUB_EVENT_NAME"] = name
	r.Env["GITHUB_REF"] = ref
	p := filepath.Join(filepath.Dir(r.OutputFile), "event.json")
	if err := os.WriteFile(p, []byte(payload), 0o644); err != nil {
		return err
	}
	r.Env["GITHUB_EVENT_PATH"] = p
	return nil
}

// SetPush makes the run a push to branch in a repository whose default branch is
// defaultBranch, with the payload fields the cache policy reads.
func (r *ActionRun) SetPush(branch, defaultBranch string) error {
	payload, err := json.Marshal(map[string]any{
		"ref":        "refs/heads/" + branch,
		"repository": map[string]any{"default_branch": defaultBranch},
	})
	if err != nil {
		return err
	}
	return r.SetEvent("push", "refs/heads/"+branch, string(payload))
}

// ReadOutputs parses the GITHUB_OUTPUT file the run wrote.
func (r *ActionRun) ReadOutputs() (map[string]string, error) {
	b, err := os.ReadFile(r.OutputFile)
	if err != nil {
		return nil, err
	}
	return ParseOutputs(string(b)), nil
}

// StdoutTail is the last n bytes the run printed, for an error message.
func (r *ActionRun) StdoutTail(n int) string { return Tail(r.Stdout(), n) }

// Tail is the last n bytes of s, marked as cut when it was longer.
func Tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
