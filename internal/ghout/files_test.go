package ghout

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/runnerlog"
	"github.com/sethvargo/go-githubactions"
)

// goGitHubActionsDelimiter is the fixed heredoc delimiter of go-githubactions v1.3.2.
const goGitHubActionsDelimiter = "_GitHubActionsFileCommandDelimeter_"

// hostileOutput ends go-githubactions' heredoc early, adds an output of its own
// and opens one more that go-githubactions' closing delimiter ends, so the file
// stays valid.
const hostileOutput = "first line\n" + goGitHubActionsDelimiter + "\nimage<<EOF\nevil.example/backdoor\nEOF\ntail<<" + goGitHubActionsDelimiter

func actionWithFiles(t *testing.T) (*githubactions.Action, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	env := map[string]string{
		"GITHUB_OUTPUT": filepath.Join(dir, "output"),
		"GITHUB_STATE":  filepath.Join(dir, "state"),
	}
	for _, f := range env {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a := githubactions.New(
		githubactions.WithGetenv(func(k string) string { return env[k] }),
		githubactions.WithWriter(&strings.Builder{}),
	)
	return a, env
}

func readBack(t *testing.T, path string) [][2]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := runnerlog.ReadFileCommands(string(b))
	if err != nil {
		t.Fatalf("the runner cannot read %s: %v\n%s", path, err, b)
	}
	return got
}

func TestFixedDelimiterLetsAValueAddOutputs(t *testing.T) {
	t.Parallel()
	a, env := actionWithFiles(t)
	a.SetOutput("metadata", hostileOutput)
	got := readBack(t, env["GITHUB_OUTPUT"])
	want := [][2]string{{"metadata", "first line"}, {"image", "evil.example/backdoor"}, {"tail", ""}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("go-githubactions' SetOutput read back as %q: the hole SetOutput closes is not shown", got)
	}
}

func TestSetOutputRoundTrips(t *testing.T) {
	t.Parallel()
	a, env := actionWithFiles(t)
	want := [][2]string{
		{"metadata", hostileOutput},
		{"digest", "sha256:0123"},
		{"empty", ""},
		{"cache-from", "a\nb\n"},
		{"crlf", "\r\nwindows\r\n"},
		{"lookalike", "ghadelimiter_ABC\nghadelimiter_\n"},
		{"only-delimiter", goGitHubActionsDelimiter},
	}
	for _, o := range want {
		if err := SetOutput(a, o[0], o[1]); err != nil {
			t.Fatal(err)
		}
	}
	if got := readBack(t, env["GITHUB_OUTPUT"]); !reflect.DeepEqual(got, want) {
		t.Errorf("outputs read back as\n%q\nwant\n%q", got, want)
	}

	if err := SaveState(a, "container", hostileOutput); err != nil {
		t.Fatal(err)
	}
	if got, want := readBack(t, env["GITHUB_STATE"]), [][2]string{{"container", hostileOutput}}; !reflect.DeepEqual(got, want) {
		t.Errorf("state read back as %q, want %q", got, want)
	}
}

func TestSetOutputDelimitersDiffer(t *testing.T) {
	t.Parallel()
	a, env := actionWithFiles(t)
	for range 2 {
		if err := SetOutput(a, "x", "y"); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(env["GITHUB_OUTPUT"])
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 5 || !strings.HasPrefix(lines[0], "x<<ghadelimiter_") || lines[0] == lines[3] {
		t.Errorf("want a fresh ghadelimiter_ per output, got:\n%s", b)
	}
}

func TestSetOutputErrors(t *testing.T) {
	t.Parallel()
	a := githubactions.New(githubactions.WithGetenv(func(string) string { return "" }))
	if err := SetOutput(a, "digest", "x"); err == nil || !strings.Contains(err.Error(), "GITHUB_OUTPUT is not set") {
		t.Errorf("without GITHUB_OUTPUT: error %v, want one saying GITHUB_OUTPUT is not set", err)
	}
	if err := SaveState(a, "container", "x"); err == nil || !strings.Contains(err.Error(), "GITHUB_STATE is not set") {
		t.Errorf("without GITHUB_STATE: error %v, want one saying GITHUB_STATE is not set", err)
	}

	a, env := actionWithFiles(t)
	for _, name := range []string{"", "a=b", "a<<b", "a<", "a\nb", "a\rb"} {
		if err := SetOutput(a, name, "v"); err == nil || !strings.Contains(err.Error(), "GITHUB_OUTPUT") {
			t.Errorf("SetOutput(%q): error %v, want one naming the bad name and GITHUB_OUTPUT", name, err)
		}
	}
	if b, _ := os.ReadFile(env["GITHUB_OUTPUT"]); len(b) != 0 {
		t.Errorf("refused outputs were written: %q", b)
	}
}

func TestHeredocRefusesTheDelimiterInTheValue(t *testing.T) {
	t.Parallel()
	if _, err := heredoc("x", "a\nD\nb", "D"); err == nil {
		t.Error("a value containing the delimiter was accepted")
	}
	got, err := heredoc("x", "a\nb", "D")
	if err != nil || got != "x<<D\na\nb\nD\n" {
		t.Errorf("heredoc = %q, %v", got, err)
	}
}
