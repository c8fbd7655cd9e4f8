package solve

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// checkout writes files into a new directory and, when commit is set, commits
// them in a git repository there, as actions/checkout leaves a workspace.
func checkout(t *testing.T, files map[string]string, commit bool) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if commit {
		for _, args := range [][]string{
			{"-c", "init.defaultBranch=main", "init", "-q"},
			{"add", "-A"},
			{"-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "-m", "c"},
		} {
			if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
				t.Fatalf("git %v: %v\n%s", args, err, out)
			}
		}
	}
	return dir
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	files := map[string]string{"Dockerfile": "FROM scratch\nCOPY src /src\n", "src/a.txt": "a\n", "src/b.txt": "b\n"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for f, b := range files {
			m[f] = b
		}
		m[k] = v
		return m
	}
	fp := func(dir string, change func(*Request)) string {
		t.Helper()
		req := Request{ContextDir: dir, Dockerfile: filepath.Join(dir, "Dockerfile"), BuildArgs: map[string]string{"V": "1"}}
		if change != nil {
			change(&req)
		}
		got, err := Fingerprint(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	base := fp(checkout(t, files, true), nil)
	if base == "" {
		t.Fatal("a committed context has no fingerprint")
	}
	uncommitted := checkout(t, files, true)
	if err := os.WriteFile(filepath.Join(uncommitted, "src", "a.txt"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		got  string
		same bool
	}{
		{"same files in another checkout", fp(checkout(t, files, true), nil), true},
		{"a source file changed", fp(checkout(t, with("src/a.txt", "changed\n"), true), nil), false},
		{"the Dockerfile changed", fp(checkout(t, with("Dockerfile", "FROM scratch\n"), true), nil), false},
		{"a build arg changed", fp(checkout(t, files, true), func(r *Request) { r.BuildArgs["V"] = "2" }), false},
		{"a target set", fp(checkout(t, files, true), func(r *Request) { r.Target = "x" }), false},
		{"a named context added", fp(checkout(t, files, true), func(r *Request) { r.Contexts = map[string]string{"lib": checkout(t, files, true)} }),
			false},
		// Only what HEAD holds counts: the guess may be wrong, never the build.
		{"a change not committed", fp(uncommitted, nil), true},
	} {
		if (tc.got == base) != tc.same {
			t.Errorf("%s: fingerprint %s, base %s; want same=%v", tc.name, tc.got, base, tc.same)
		}
	}
	if got := fp(checkout(t, files, false), nil); got != "" {
		t.Errorf("a context outside git: fingerprint %q, want none", got)
	}
	if got := fp(checkout(t, files, true), func(r *Request) { r.Contexts = map[string]string{"lib": t.TempDir()} }); got != "" {
		t.Errorf("a named context outside git: fingerprint %q, want none", got)
	}
}
