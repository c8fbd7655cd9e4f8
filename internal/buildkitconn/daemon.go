package buildkitconn

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/shlex"
	"github.com/pelletier/go-toml/v2"
)

// Daemon configures the buildkitd of the container this action starts
// (buildkit-image, buildkitd-config-inline, buildkitd-flags), as buildx's
// docker-container driver does: the config file is put into the created
// container before buildkitd starts.
type Daemon struct {
	Image  string   // "" is Image
	Config string   // buildkitd.toml
	Flags  []string // more buildkitd flags
}

// ConfigPath is where the started container's buildkitd reads its config:
// buildkitd's default for root, where buildx puts it too.
const ConfigPath = "/etc/buildkit/buildkitd.toml"

// ParseDaemon reads the three inputs; every problem is in the error, named
// by its input.
func ParseDaemon(image, configTOML, flags string) (Daemon, error) {
	d := Daemon{Image: image, Config: configTOML}
	var errs []error
	if image != "" {
		if _, err := reference.ParseNormalizedNamed(image); err != nil {
			errs = append(errs, fmt.Errorf("buildkit-image: %q is not an image reference: %w", image, err))
		}
	}
	// The syntax only: buildkitd's own config package would bring a database
	// and signature libraries into the action; a wrong value still stops the
	// daemon, whose log the start-up error then shows.
	var doc map[string]any
	if err := toml.Unmarshal([]byte(configTOML), &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			err = fmt.Errorf("line %d, column %d: %s", row, col, de.Error())
		}
		errs = append(errs, fmt.Errorf("buildkitd-config-inline: not TOML: %w", err))
	}
	var err error
	if d.Flags, err = shlex.Split(flags); err != nil {
		errs = append(errs, fmt.Errorf("buildkitd-flags: %w", err))
	}
	for _, f := range d.Flags {
		name, _, _ := strings.Cut(f, "=")
		switch name {
		case "--addr":
			errs = append(errs, fmt.Errorf("buildkitd-flags: %s: the action reaches the container's buildkitd on its default socket; remove it", name))
		case "--config":
			errs = append(errs, fmt.Errorf("buildkitd-flags: %s: give the config's text in buildkitd-config-inline", name))
		}
	}
	return d, errors.Join(errs...)
}

// Set tells whether any of the three inputs was given.
func (d Daemon) Set() bool { return d.Image != "" || d.Config != "" || len(d.Flags) > 0 }

func (d Daemon) image() string {
	if d.Image != "" {
		return d.Image
	}
	return Image
}

// Args are buildkitd's arguments: the config file at configPath when there is
// a config, then the flags.
func (d Daemon) Args(configPath string) []string {
	var args []string
	if d.Config != "" {
		args = append(args, "--config", configPath)
	}
	return append(args, d.Flags...)
}

// configArchive is the tar that `docker cp - <container>:/etc` unpacks into
// ConfigPath.
func (d Daemon) configArchive() (io.Reader, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	dir := path.Base(path.Dir(ConfigPath))
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755}); err != nil {
		return nil, err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: dir + "/" + path.Base(ConfigPath), Mode: 0o644, Size: int64(len(d.Config))}); err != nil {
		return nil, err
	}
	if _, err := tw.Write([]byte(d.Config)); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &b, nil
}
