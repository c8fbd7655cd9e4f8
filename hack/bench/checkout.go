package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// commitContext makes dir a git work tree whose HEAD commit holds exactly its
// files, as actions/checkout leaves a pushed commit: the action fingerprints a
// build context by its git tree (`git rev-parse HEAD:./`), so identical
// content gives the same fingerprint in any directory. A later call commits
// what changed since, as a push would. The context's .dockerignore keeps .git
// out of the build (added, or appended to, and committed like the rest), so
// git's own files change no build, for the action and buildctl alike.
func commitContext(dir, msg string) error {
	if err := ignoreGit(dir); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, ".git")); os.IsNotExist(err) {
		if err := git(dir, "-c", "init.defaultBranch=main", "init", "-q"); err != nil {
			return err
		}
	}
	if err := git(dir, "add", "-A"); err != nil {
		return err
	}
	// --allow-empty: a call after no change still leaves HEAD's tree exact.
	return git(dir, "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-q", "--allow-empty", "-m", msg)
}

// cloneContext checks src's HEAD out into the new directory dir, sharing
// src's objects: a checkout of the same commit, for a context that differs
// from src by a change committed next, without hashing and storing every
// file again.
func cloneContext(src, dir string) error {
	return git(src, "clone", "-q", "--shared", ".", dir)
}

// ignoreGit makes dir's .dockerignore list .git.
func ignoreGit(dir string) error {
	p := filepath.Join(dir, ".dockerignore")
	old, err := os.ReadFile(p)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if slices.Contains(strings.Split(string(old), "\n"), ".git") {
		return nil
	}
	if len(old) > 0 && !bytes.HasSuffix(old, []byte("\n")) {
		old = append(old, '\n')
	}
	return os.WriteFile(p, append(old, ".git\n"...), 0o644)
}

// git runs git in dir without the machine's user or system configuration
// (commit signing, hooks, excludes files).
func git(dir string, args ...string) error {
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=" + os.DevNull}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s in %s: %w\n%s", strings.Join(args, " "), dir, err, out)
	}
	return nil
}
