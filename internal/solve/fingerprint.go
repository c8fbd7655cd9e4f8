package solve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// gitTimeout bounds one git call: it reads the repository, never the network.
const gitTimeout = 10 * time.Second

// Fingerprint names what a build's steps are made of without walking its
// context: the Dockerfile's bytes, the frontend's options (build args, target,
// platforms, named contexts, run options) and the git tree HEAD holds for each
// local context directory. Builds with the same fingerprint almost always hit
// the same cache records; it is "" when a local context is not a directory
// committed in a git work tree (then nothing cheap says what it holds).
//
// It guides a guess, never a result: files changed but not committed, or a base
// image moved under its tag, make steps run under an equal fingerprint, and a
// changed file the build never reads changes it without running a step.
func Fingerprint(ctx context.Context, req Request) (string, error) {
	opt, err := solveOpt(req)
	if err != nil {
		return "", err
	}
	dockerfile, err := os.ReadFile(req.Dockerfile)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", req.Dockerfile, err)
	}
	sum := sha256.Sum256(dockerfile)
	trees := map[string]string{}
	for name, dir := range localDirs(req) {
		tree, err := gitTree(ctx, dir)
		if err != nil || tree == "" {
			return "", err
		}
		trees[name] = tree
	}
	b, err := json.Marshal(struct {
		Dockerfile string
		Attrs      map[string]string
		Trees      map[string]string
	}{hex.EncodeToString(sum[:]), opt.FrontendAttrs, trees})
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

// gitTree is the hash of the tree HEAD holds at dir; "" when dir is not a
// committed directory of a git work tree, or git is missing.
func gitTree(ctx context.Context, dir string) (string, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, gitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "--verify", "--quiet", "HEAD:./")
	out, err := cmd.Output()
	switch {
	case ctx.Err() != nil:
		return "", fmt.Errorf("git rev-parse in %s: %w", dir, ctx.Err())
	case err != nil:
		return "", nil // not a git work tree, no commit yet, or dir not committed
	}
	return strings.TrimSpace(string(out)), nil
}
