package buildkitconn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// buildxDir is buildx's store: $BUILDX_CONFIG, else buildx beside the docker
// CLI's config ($DOCKER_CONFIG, else ~/.docker). "" when neither is known.
func buildxDir(getenv func(string) string) string {
	if d := getenv("BUILDX_CONFIG"); d != "" {
		return d
	}
	if d := dockerConfigDir(getenv); d != "" {
		return filepath.Join(d, "buildx")
	}
	return ""
}

func dockerConfigDir(getenv func(string) string) string {
	if d := getenv("DOCKER_CONFIG"); d != "" {
		return d
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".docker")
	}
	return ""
}

// defaultDockerHost is the docker CLI's engine when nothing else is set.
const defaultDockerHost = "unix:///var/run/docker.sock"

// dockerEndpointKey is the key under which buildx records the current builder
// of the docker CLI's current engine: the context's name, or for the default
// context its host (buildx's dockerutil.GetCurrentEndpoint). The context is the
// docker CLI's: $DOCKER_CONTEXT, else the default when $DOCKER_HOST is set, else
// config.json's currentContext.
func dockerEndpointKey(getenv func(string) string) string {
	name := getenv("DOCKER_CONTEXT")
	if name == "" && getenv("DOCKER_HOST") == "" {
		var cfg struct{ CurrentContext string }
		if b, err := os.ReadFile(filepath.Join(dockerConfigDir(getenv), "config.json")); err == nil {
			_ = json.Unmarshal(b, &cfg) // an unreadable config is the docker CLI's problem to report
			name = cfg.CurrentContext
		}
	}
	if name != "" && name != "default" {
		return name
	}
	if h := getenv("DOCKER_HOST"); h != "" {
		return h
	}
	return defaultDockerHost
}

// currentBuilder is the builder buildx would use with no --builder: the one
// `docker buildx create --use` (what docker/setup-buildx-action runs by
// default) or `docker buildx use` recorded for the current docker engine, or
// one made the engine's default (`use --default`), or a global one (`use
// --global`); as buildx's store.Txn.Current reads its files. "" when there is
// none, which is also when only buildx's implicit docker-driver builder exists.
func currentBuilder(getenv func(string) string) (string, error) {
	dir := buildxDir(getenv)
	if dir == "" {
		return "", nil
	}
	exists := func(name string) bool {
		if !builderName.MatchString(name) {
			return false
		}
		_, err := os.Stat(filepath.Join(dir, "instances", strings.ToLower(name)))
		return err == nil
	}
	key := dockerEndpointKey(getenv)
	b, err := os.ReadFile(filepath.Join(dir, "current"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return "", fmt.Errorf("read buildx's current builder: %w", err)
	default:
		var c struct {
			Key    string
			Name   string
			Global bool
		}
		if err := json.Unmarshal(b, &c); err != nil {
			return "", fmt.Errorf("read buildx's current builder %s: %w", filepath.Join(dir, "current"), err)
		}
		if c.Name != "" && c.Global && exists(c.Name) {
			return c.Name, nil
		}
		if c.Name != "" && c.Key == key {
			if exists(c.Name) {
				return c.Name, nil
			}
			return "", nil
		}
	}
	// buildx names a default's file by the key's digest, its first 20 hex digits.
	sum := sha256.Sum256([]byte(key))
	name, err := os.ReadFile(filepath.Join(dir, "defaults", hex.EncodeToString(sum[:])[:20]))
	if err != nil || !exists(string(name)) {
		return "", nil
	}
	return string(name), nil
}

// useCurrentBuilder is the endpoint of buildx's current builder, as
// docker/build-push-action builds on it, with a notice saying so. When there
// is none it returns no endpoint; when there is one it cannot use, a warning
// saying why, and the run starts its own container.
func useCurrentBuilder(ctx context.Context, opt Options) (Endpoint, string) {
	name, err := currentBuilder(opt.Getenv)
	switch {
	case err != nil:
		return Endpoint{}, fmt.Sprintf("buildx's current builder was not used: %v", err)
	case name == "":
		return Endpoint{}, ""
	case opt.Daemon.Set():
		return Endpoint{}, fmt.Sprintf("buildx's current builder %s was not used: buildkit-image, buildkitd-config-inline and buildkitd-flags configure a BuildKit container this action starts "+
			"(set builder: %s instead to build on it)", name, name)
	}
	ep, err := fromBuilder(ctx, name, opt.Platforms, opt.Getenv, opt.AllowInsecureTCP)
	if err != nil {
		return Endpoint{}, fmt.Sprintf("buildx's current builder %s was not used: %v", name, err)
	}
	ep.Source = "buildx's current builder: " + ep.Source
	ep.Notice = fmt.Sprintf("Building on buildx's current builder %s (docker/setup-buildx-action or docker buildx use made it current), as docker/build-push-action does; "+
		"set builder, buildkit-host or BUILDKIT_HOST to build elsewhere", name)
	return ep, ""
}
