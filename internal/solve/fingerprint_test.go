package solve

import (
	"context"
	"errors"
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
	files := map[string]string{
		"Dockerfile": "FROM scratch\nCOPY src /src\n", "src/a.txt": "a\n", "src/b.txt": "b\n",
		".gitignore": "out/\n", ".dockerignore": "out/skip.log\n",
	}
	with := func(extra ...string) map[string]string {
		m := map[string]string{}
		for f, b := range files {
			m[f] = b
		}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
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
		if got == "" {
			t.Fatalf("no fingerprint for %s", dir)
		}
		return got
	}
	// generated is a checkout where an earlier step wrote files git ignores.
	generated := func(jar string) string {
		dir := checkout(t, files, true)
		for name, body := range map[string]string{"out/app.jar": jar, "out/skip.log": jar} {
			if err := os.MkdirAll(filepath.Join(dir, "out"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	uncommitted := checkout(t, files, true)
	if err := os.WriteFile(filepath.Join(uncommitted, "src", "a.txt"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deleted := checkout(t, files, true)
	if err := os.Remove(filepath.Join(deleted, "src", "b.txt")); err != nil {
		t.Fatal(err)
	}
	staged := checkout(t, files, true)
	if err := os.WriteFile(filepath.Join(staged, "src", "a.txt"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("git", "-C", staged, "add", "src/a.txt").CombinedOutput(); err != nil {
		t.Fatalf("git add: %v\n%s", err, out)
	}
	ignoredOnly := generated("v1")
	if err := os.WriteFile(filepath.Join(ignoredOnly, "out", "skip.log"), []byte("other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		got, base string
		same      bool
	}{
		{"same files in another checkout", fp(checkout(t, files, true), nil), fp(checkout(t, files, true), nil), true},
		{"a source file changed", fp(checkout(t, with("src/a.txt", "changed\n"), true), nil), fp(checkout(t, files, true), nil), false},
		{"the Dockerfile changed", fp(checkout(t, with("Dockerfile", "FROM scratch\n"), true), nil), fp(checkout(t, files, true), nil), false},
		{"a build arg changed", fp(checkout(t, files, true), func(r *Request) { r.BuildArgs["V"] = "2" }), fp(checkout(t, files, true), nil), false},
		{"a target set", fp(checkout(t, files, true), func(r *Request) { r.Target = "x" }), fp(checkout(t, files, true), nil), false},
		{"a named context added", fp(checkout(t, files, true), func(r *Request) { r.Contexts = map[string]string{"lib": checkout(t, files, true)} }),
			fp(checkout(t, files, true), nil), false},
		// What BuildKit receives counts, committed or not.
		{"a change not committed", fp(uncommitted, nil), fp(checkout(t, files, true), nil), false},
		{"a file deleted, not committed", fp(deleted, nil), fp(checkout(t, files, true), nil), false},
		{"a change staged, not committed", fp(staged, nil), fp(checkout(t, files, true), nil), false},
		{"a generated git-ignored file, same bytes", fp(generated("v1"), nil), fp(generated("v1"), nil), true},
		{"a generated git-ignored file changed, HEAD not", fp(generated("v2"), nil), fp(generated("v1"), nil), false},
		{"a changed file .dockerignore leaves out", fp(ignoredOnly, nil), fp(generated("v1"), nil), true},
		{"outside git: same files", fp(checkout(t, files, false), nil), fp(checkout(t, files, false), nil), true},
		{"outside git: a file changed", fp(checkout(t, with("src/a.txt", "changed\n"), false), nil), fp(checkout(t, files, false), nil), false},
		{"outside git: a file added", fp(checkout(t, with("src/c.txt", "c\n"), false), nil), fp(checkout(t, files, false), nil), false},
		{"outside git: a file .dockerignore leaves out", fp(checkout(t, with("out/skip.log", "x\n"), false), nil),
			fp(checkout(t, files, false), nil), true},
		{"a named context outside git changed", fp(checkout(t, files, true), func(r *Request) { r.Contexts = map[string]string{"lib": checkout(t, with("x", "2"), false)} }),
			fp(checkout(t, files, true), func(r *Request) { r.Contexts = map[string]string{"lib": checkout(t, with("x", "1"), false)} }), false},
	} {
		if (tc.got == tc.base) != tc.same {
			t.Errorf("%s: fingerprint %s, base %s; want same=%v", tc.name, tc.got, tc.base, tc.same)
		}
	}
}

// Hashing a file stops when the fingerprint's deadline passes, however large
// the file is.
func TestHashFileStopsAtTheDeadline(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(path, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got, err := hashFile(ctx, path); !errors.Is(err, context.Canceled) {
		t.Errorf("hashFile after the deadline = %q, %v; want context.Canceled", got, err)
	}
	if got, err := hashFile(context.Background(), path); err != nil || got == "" {
		t.Errorf("hashFile = %q, %v; want a hash", got, err)
	}
}
