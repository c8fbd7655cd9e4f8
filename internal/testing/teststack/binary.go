package teststack

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var binary struct {
	once sync.Once
	path string
	err  error
}

// Binary builds the action's binary once per test process.
func Binary(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "ebc-bin-")
		if err != nil {
			binary.err = err
			return
		}
		binary.path, binary.err = BuildBinary(context.Background(), dir)
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

// BuildBinary compiles the action into dir and returns the binary's path.
func BuildBinary(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "ecr-build-cache")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = RepoRoot()
	// Static, as the launcher and make dist build it: the cache mounts run it
	// inside the builder, on an empty root file system.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the action: %w\n%s", err, out)
	}
	return bin, nil
}

// Exec runs the action binary as a runner would, with the run's environment
// only (plus PATH), and captures what it prints. AWS settings from the machine
// never leak in: no shared config files and no EC2 metadata calls.
func (r *ActionRun) Exec(ctx context.Context, bin string) error {
	home := filepath.Join(filepath.Dir(r.OutputFile), "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return err
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(home, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "aws-credentials"),
	}
	for k, v := range r.Env {
		env = append(env, k+"="+v)
	}
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &r.out, &r.out
	return cmd.Run()
}
