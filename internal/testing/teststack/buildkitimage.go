package teststack

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// BuildkitImageRef is the name BuildkitImage gives the image in an engine.
const BuildkitImageRef = "ebc-test/buildkit:local"

var rootfs struct {
	once sync.Once
	path string
	err  error
}

// BuildkitImage puts a BuildKit image into the Docker engine at host and
// returns its name: the stack's own buildkitd and buildctl, runc with its
// libraries and busybox, with buildkitd as its entrypoint, like moby/buildkit
// (which cannot be pulled here). Its root filesystem is made once and kept next
// to the tools, named by what went into it.
func (s *Stack) BuildkitImage(t testing.TB, host string) string {
	t.Helper()
	path, err := s.BuildkitRootfs()
	if err != nil {
		t.Fatalf("BuildKit image root filesystem: %v", err)
	}
	if err := ImportBuildkitImage(host, path); err != nil {
		t.Fatal(err)
	}
	return BuildkitImageRef
}

// ImportBuildkitImage imports a root filesystem made for BuildkitImage into
// the engine at host as BuildkitImageRef.
func ImportBuildkitImage(host, rootfsTar string) error {
	out, err := Docker(host, "import",
		"--change", `ENTRYPOINT ["buildkitd"]`,
		"--change", "VOLUME /var/lib/buildkit",
		"--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		rootfsTar, BuildkitImageRef)
	if err != nil {
		return fmt.Errorf("docker import %s: %w: %s", rootfsTar, err, out)
	}
	return nil
}

// BuildkitRootfs is the root filesystem tar that BuildkitImage imports, for
// programs that have no testing.TB (the benchmarks).
func (s *Stack) BuildkitRootfs() (string, error) {
	rootfs.once.Do(func() { rootfs.path, rootfs.err = s.buildkitRootfs() })
	return rootfs.path, rootfs.err
}

// imageFile is one file of the image: its path there and on this machine.
type imageFile struct{ dst, src string }

func (s *Stack) buildkitRootfs() (string, error) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		return "", fmt.Errorf("no runc (hack/install-stack.sh installs it): %w", err)
	}
	files := []imageFile{
		{"usr/bin/buildkitd", s.Tool("buildkitd")},
		{"usr/bin/buildctl", s.Tool("buildctl")},
		{"usr/bin/runc", runc},
		{"bin/busybox", "/bin/busybox"},
	}
	libs, err := sharedLibs(runc)
	if err != nil {
		return "", err
	}
	files = append(files, libs...)
	// The tar's name says what went into it, so a new buildkitd or runc makes a new one.
	h := sha256.New()
	for _, f := range files {
		st, err := os.Stat(f.src)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %s %d %d\n", f.dst, f.src, st.Size(), st.ModTime().UnixNano())
	}
	path := filepath.Join(filepath.Dir(s.Tool("buildkitd")), "image-rootfs-"+hex.EncodeToString(h.Sum(nil))[:12]+".tar")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".image-rootfs-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if err := writeRootfs(tmp, files); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	// Atomic: test processes of several packages may make it at once.
	return path, os.Rename(tmp.Name(), path)
}

// ldd prints "name => /path (0x...)" or "/path (0x...)" per library.
var lddPath = regexp.MustCompile(`(?m)(?:=> |^\s*)(/\S+) \(0x`)

// sharedLibs are the libraries a dynamic binary loads, at the paths it loads them from.
func sharedLibs(bin string) ([]imageFile, error) {
	out, err := exec.Command("ldd", bin).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w: %s", bin, err, out)
	}
	var libs []imageFile
	for _, m := range lddPath.FindAllStringSubmatch(string(out), -1) {
		target, err := filepath.EvalSymlinks(m[1])
		if err != nil {
			return nil, err
		}
		libs = append(libs, imageFile{strings.TrimPrefix(m[1], "/"), target})
	}
	return libs, nil
}

func writeRootfs(w io.Writer, files []imageFile) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	tw := tar.NewWriter(bw)
	dirs := map[string]bool{}
	mkdir := func(d string, mode int64) error {
		if d == "." || dirs[d] {
			return nil
		}
		dirs[d] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode})
	}
	for _, d := range []string{"bin", "usr", "usr/bin", "etc", "var", "var/lib", "var/lib/buildkit", "run", "root"} {
		if err := mkdir(d, 0o755); err != nil {
			return err
		}
	}
	if err := mkdir("tmp", 0o1777); err != nil {
		return err
	}
	for _, f := range files {
		for _, d := range parents(f.dst) {
			if err := mkdir(d, 0o755); err != nil {
				return err
			}
		}
		if err := addFile(tw, f); err != nil {
			return err
		}
	}
	// busybox's applets: sh for buildctl's and docker exec's needs, and a shell to look around.
	applets, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	for _, a := range strings.Fields(string(applets)) {
		if a == "busybox" {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// parents are the directories above a relative path, outermost first.
func parents(p string) []string {
	var ds []string
	for d := filepath.Dir(p); d != "."; d = filepath.Dir(d) {
		ds = append([]string{d}, ds...)
	}
	return ds
}

func addFile(tw *tar.Writer, f imageFile) error {
	in, err := os.Open(f.src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.dst, Mode: int64(st.Mode().Perm()), Size: st.Size()}); err != nil {
		return err
	}
	_, err = io.Copy(tw, in)
	return err
}
