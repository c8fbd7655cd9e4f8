package solve

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/patternmatcher"
)

// fingerprintTimeout bounds the whole fingerprint (git calls and hashing the
// files git does not know): past it the run makes no guess and exports in its
// one solve.
const fingerprintTimeout = 30 * time.Second

// Fingerprint names what a build's steps are made of: the Dockerfile's bytes,
// the frontend's options (build args, target, platforms, named contexts, run
// options) and, for each local context directory, what BuildKit will receive
// from it after .dockerignore. In a git work tree that is the tree HEAD holds
// plus the content of every file git does not have committed as it is (changed,
// untracked or git-ignored: a jar or bundle an earlier step made); outside git
// it is the content of every file. Builds with the same fingerprint almost
// always hit the same cache records.
//
// It guides a guess, never a result: a base image moved under its tag makes
// steps run under an equal fingerprint, and a changed file the build never
// reads changes it without running a step. On an error (or past
// fingerprintTimeout) it returns "" and the error: the caller then makes no
// guess.
func Fingerprint(ctx context.Context, req Request) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, fingerprintTimeout)
	defer cancel()
	opt, err := solveOpt(req)
	if err != nil {
		return "", err
	}
	dockerfile, err := os.ReadFile(req.Dockerfile)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", req.Dockerfile, err)
	}
	sum := sha256.Sum256(dockerfile)
	contexts := map[string]string{}
	for name, dir := range localDirs(req) {
		// The frontend applies the Dockerfile's .dockerignore to the main
		// context only; a named context is taken whole.
		var patterns []string
		if name == "context" {
			if patterns, err = dockerignore(dir, req.Dockerfile); err != nil {
				return "", err
			}
		}
		if contexts[name], err = contextDigest(ctx, dir, patterns); err != nil {
			return "", fmt.Errorf("fingerprint context %s: %w", name, err)
		}
	}
	b, err := json.Marshal(struct {
		Dockerfile string
		Attrs      map[string]string
		Contexts   map[string]string
	}{hex.EncodeToString(sum[:]), opt.FrontendAttrs, contexts})
	if err != nil {
		return "", err
	}
	sum = sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// localDirs are the directories a build sends from this machine, by context name.
func localDirs(req Request) map[string]string {
	dirs := map[string]string{"context": req.ContextDir}
	for name, v := range req.Contexts {
		if ClassifyContext(v) == ContextLocal {
			dirs[name] = v
		}
	}
	return dirs
}

// contextDigest hashes what dir sends to BuildKit once the .dockerignore
// patterns are applied: git's tree for what HEAD holds unchanged, and the
// content of every other file.
func contextDigest(ctx context.Context, dir string, patterns []string) (string, error) {
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return "", fmt.Errorf("parse .dockerignore: %w", err)
	}
	tree, err := gitTree(ctx, dir)
	if err != nil {
		return "", err
	}
	var paths []string
	if tree != "" {
		paths, err = gitLoose(ctx, dir)
	} else {
		paths, err = walk(ctx, dir, pm)
	}
	if err != nil {
		return "", err
	}
	kept := paths[:0]
	for _, p := range paths {
		excluded, err := pm.MatchesOrParentMatches(p)
		if err != nil {
			return "", fmt.Errorf("match .dockerignore: %w", err)
		}
		if !excluded {
			kept = append(kept, p)
		}
	}
	files, err := hashFiles(ctx, dir, kept)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "tree %s\n", tree)
	for i, p := range kept {
		fmt.Fprintf(h, "%q %s\n", p, files[i])
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// gitTree is the hash of the tree HEAD holds at dir; "" when dir is not a
// committed directory of a git work tree, or git is missing.
func gitTree(ctx context.Context, dir string) (string, error) {
	out, ok, err := git(ctx, dir, "rev-parse", "--verify", "--quiet", "HEAD:./")
	if !ok {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// gitLoose lists, relative to dir, the files whose content HEAD's tree does
// not name: changed or deleted tracked files, untracked and git-ignored ones.
func gitLoose(ctx context.Context, dir string) ([]string, error) {
	out, ok, err := git(ctx, dir, "ls-files", "-z", "--others", "--modified")
	if !ok {
		return nil, cmp.Or(err, fmt.Errorf("git ls-files in %s failed", dir))
	}
	// --modified compares with the index: a change staged but not committed
	// is only in the diff against HEAD.
	staged, ok, err := git(ctx, dir, "diff", "--name-only", "-z", "--no-renames", "--relative", "HEAD")
	if !ok {
		return nil, cmp.Or(err, fmt.Errorf("git diff in %s failed", dir))
	}
	var paths []string
	for _, p := range strings.Split(string(out)+string(staged), "\x00") {
		// A nested repository shows as its directory: its files count too.
		if strings.HasSuffix(p, "/") {
			nested, err := walk(ctx, filepath.Join(dir, p), nil)
			if err != nil {
				return nil, err
			}
			for _, n := range nested {
				paths = append(paths, p+n)
			}
		} else if p != "" {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	return slices.Compact(paths), nil
}

// git runs git in dir; ok is false when it is missing or the command failed,
// err only when the deadline passed.
func git(ctx context.Context, dir string, args ...string) (out []byte, ok bool, err error) {
	if _, err := exec.LookPath("git"); err != nil {
		return nil, false, nil
	}
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	out, err = cmd.Output()
	switch {
	case ctx.Err() != nil:
		return nil, false, fmt.Errorf("git %s in %s: %w", args[0], dir, ctx.Err())
	case err != nil:
		return nil, false, nil // not a git work tree, no commit yet, or dir not committed
	}
	return out, true, nil
}

// walk lists the files and symbolic links under dir, relative to it, in
// lexical order, leaving out directories pm excludes whole.
func walk(ctx context.Context, dir string, pm *patternmatcher.PatternMatcher) ([]string, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			// A directory can be skipped only when no "!" pattern may bring
			// back something inside it.
			if pm != nil && !pm.Exclusions() {
				if excluded, err := pm.MatchesOrParentMatches(rel); err == nil && excluded {
					return filepath.SkipDir
				}
			}
			return nil
		}
		paths = append(paths, rel)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", dir, err)
	}
	return paths, nil
}

// hashFiles names each path's content: its mode and the SHA-256 of a regular
// file's bytes, or a symbolic link's target; "absent" for a deleted file.
// Reading is spread over the machine's cores.
func hashFiles(ctx context.Context, dir string, paths []string) ([]string, error) {
	out := make([]string, len(paths))
	errs := make([]error, len(paths))
	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i], errs[i] = hashFile(ctx, filepath.Join(dir, filepath.FromSlash(paths[i])))
			}
		}()
	}
	for i := range paths {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, errors.Join(errs...)
}

func hashFile(ctx context.Context, path string) (string, error) {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "absent", nil
	case err != nil:
		return "", err
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(path)
		return fmt.Sprintf("%v %q", fi.Mode(), target), err
	case !fi.Mode().IsRegular():
		return fi.Mode().String(), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	// A large file would otherwise hold the fingerprint past its deadline.
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return fmt.Sprintf("%v %x", fi.Mode(), h.Sum(nil)), nil
}

// ctxReader reads r until ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
