package solve

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// LeaksGitCredentials reports whether the build context holds a .git/config
// with a persisted credential (actions/checkout's http.<url>.extraheader, its
// default) that the build's .dockerignore does not exclude: a `COPY . .` would
// bake the token into the image.
func LeaksGitCredentials(contextDir, dockerfile string) (bool, error) {
	cfg, err := os.ReadFile(filepath.Join(contextDir, ".git", "config"))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the context's .git/config: %w", err)
	}
	if !bytes.Contains(bytes.ToLower(cfg), []byte("extraheader")) {
		return false, nil
	}
	patterns, err := dockerignore(contextDir, dockerfile)
	if err != nil {
		return false, err
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return false, fmt.Errorf("parse .dockerignore: %w", err)
	}
	excluded, err := pm.MatchesOrParentMatches(".git/config")
	if err != nil {
		return false, fmt.Errorf("match .dockerignore: %w", err)
	}
	return !excluded, nil
}

// dockerignore reads the patterns the Dockerfile frontend applies: the
// Dockerfile's own <name>.dockerignore beside it wins over the context's.
func dockerignore(contextDir, dockerfile string) ([]string, error) {
	for _, p := range []string{dockerfile + ".dockerignore", filepath.Join(contextDir, ".dockerignore")} {
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		defer f.Close()
		patterns, err := ignorefile.ReadAll(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		return patterns, nil
	}
	return nil, nil
}
