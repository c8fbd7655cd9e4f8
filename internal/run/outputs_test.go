package run_test

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// The outputs and load inputs, and the named contexts that read an output
// back: each output checked in what it wrote.

// appTxt is testdata/app/app.txt, which the sample app copies to /app/app.txt.
func appTxt(t *testing.T) string {
	return readFile(t, filepath.Join(appDir(t), "app.txt"))
}

// tarFiles reads a tar file into name -> content.
func tarFiles(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimPrefix(h.Name, "./")] = string(b)
	}
}

func TestOutputsWriteEachFormatAndTheCacheStillExports(t *testing.T) {
	s := teststack.Get(t)
	dir := t.TempDir()
	local, tarball, oci, docker := filepath.Join(dir, "local"), filepath.Join(dir, "fs.tar"), filepath.Join(dir, "oci.tar"), filepath.Join(dir, "docker.tar")
	o := mustRun(t, pushRun(t, s, "out-files", "main", map[string]string{
		"outputs": "type=local,dest=" + local + "\ntype=tar,dest=" + tarball + "\ntype=oci,dest=" + oci + "\ntype=docker,dest=" + docker,
	}))
	if got := readFile(t, filepath.Join(local, "app", "app.txt")); got != appTxt(t) {
		t.Errorf("type=local: app/app.txt = %q", got)
	}
	if got := tarFiles(t, tarball)["app/app.txt"]; got != appTxt(t) {
		t.Errorf("type=tar: app/app.txt = %q", got)
	}
	if files := tarFiles(t, oci); files["oci-layout"] == "" || !strings.Contains(files["index.json"], s.Registry+"/out-files:latest") {
		t.Errorf("type=oci: not an OCI layout of the named image: index.json %q", files["index.json"])
	}
	var manifest []struct{ RepoTags []string }
	if err := json.Unmarshal([]byte(tarFiles(t, docker)["manifest.json"]), &manifest); err != nil || len(manifest) != 1 ||
		!slices.Equal(manifest[0].RepoTags, []string{s.Registry + "/out-files:latest"}) {
		t.Errorf("type=docker: manifest.json %+v (%v), want the image tagged %s/out-files:latest", manifest, err, s.Registry)
	}
	// With outputs and no push input, nothing is pushed (as in build-push-action),
	// and the registry cache is written all the same.
	if _, found, err := teststack.Manifest(s.Registry+"/out-files:latest", nil); err != nil || found {
		t.Errorf("outputs without push pushed the image (found=%v, %v)", found, err)
	}
	if _, found, err := teststack.Manifest(o["cache-ref"], nil); err != nil || !found || o["pushed"] != "false" {
		t.Errorf("cache %q not exported next to the outputs (found=%v, %v), pushed=%s", o["cache-ref"], found, err, o["pushed"])
	}
}

func TestOutputsRegistryAndPushByDigest(t *testing.T) {
	s := teststack.Get(t)
	o := mustRun(t, pushRun(t, s, "out-registry", "main", map[string]string{"outputs": "type=registry"}))
	if d, found, err := teststack.Manifest(s.Registry+"/out-registry:latest", nil); err != nil || !found || d.Digest.String() != o["digest"] {
		t.Errorf("type=registry: tag found=%v (%v), digest output %q", found, err, o["digest"])
	}

	// push-by-digest pushes the manifest without a tag; the image is named by
	// the output's name (a repository), and tags is empty.
	o = mustRun(t, pushRun(t, s, "out-digest", "main", map[string]string{
		"tags":    "",
		"outputs": "type=image,name=" + s.Registry + "/out-digest,push-by-digest=true,name-canonical=true,push=true",
	}))
	if !strings.HasPrefix(o["digest"], "sha256:") || o["pushed"] != "true" || o["image"] != s.Registry+"/out-digest@"+o["digest"] {
		t.Fatalf("push-by-digest: digest %q pushed %q image %q", o["digest"], o["pushed"], o["image"])
	}
	if got := imageFile(t, s.Registry+"/out-digest@"+o["digest"], "/app/app.txt"); got != appTxt(t) {
		t.Errorf("the image by digest holds app/app.txt %q", got)
	}
	if tags, err := teststack.Tags(s.Registry + "/out-digest"); err != nil || slices.ContainsFunc(tags, func(t string) bool { return !strings.HasPrefix(t, "cache-") }) {
		t.Errorf("push-by-digest left image tags %q (%v)", tags, err)
	}

	// push: true with outputs adds the registry push to them, as buildx --push.
	local := t.TempDir()
	mustRun(t, pushRun(t, s, "out-push-local", "main", map[string]string{"push": "true", "outputs": "type=local,dest=" + local}))
	if _, found, _ := teststack.Manifest(s.Registry+"/out-push-local:latest", nil); !found || readFile(t, filepath.Join(local, "app", "app.txt")) != appTxt(t) {
		t.Errorf("push: true with a local output: pushed=%v", found)
	}
	// A contradiction is refused rather than guessed.
	r := pushRun(t, s, "out-conflict", "main", map[string]string{"push": "true", "outputs": "type=image,push=false"})
	if err := failRun(t, r); !strings.Contains(err.Error(), "push=false, but the push input is true") {
		t.Errorf("push: true with type=image,push=false: %v", err)
	}
}

func TestLoadPutsTheImageIntoTheRunnersDockerEngine(t *testing.T) {
	s := teststack.Get(t)
	host := teststack.StartDocker(t)
	r := pushRun(t, s, "out-load", "main", map[string]string{"load": "true", "push": "false"})
	r.Env["PATH"], r.Env["DOCKER_HOST"] = os.Getenv("PATH"), host
	mustRun(t, r)
	image := s.Registry + "/out-load:latest"
	if !strings.Contains(r.Stdout(), "loaded into the runner's Docker engine: Loaded image: "+image) {
		t.Errorf("no load message in:\n%s", r.StdoutTail(2000))
	}
	// The engine has the image, with the app's file in it.
	if out, err := teststack.Docker(host, "image", "inspect", "--format", "{{.Id}}", image); err != nil {
		t.Fatalf("docker image inspect %s: %v: %s", image, err, out)
	}
	save := filepath.Join(t.TempDir(), "saved.tar")
	if out, err := teststack.Docker(host, "save", "-o", save, image); err != nil {
		t.Fatalf("docker save: %v: %s", err, out)
	}
	found := false
	for name, layer := range tarFiles(t, save) {
		if strings.HasSuffix(name, "layer.tar") && strings.Contains(layer, appTxt(t)) {
			found = true
		}
	}
	if !found {
		t.Error("no layer of the loaded image holds app/app.txt")
	}

	// No engine: the run fails before building, saying why.
	r = pushRun(t, s, "out-load", "main", map[string]string{"load": "true", "push": "false"})
	r.Env["PATH"], r.Env["DOCKER_HOST"] = os.Getenv("PATH"), "unix://"+filepath.Join(t.TempDir(), "none.sock")
	if err := failRun(t, r); !strings.Contains(err.Error(), "load: no Docker engine") {
		t.Errorf("load without an engine: %v", err)
	}
}

func TestBuildContextsFromADirectoryAnImageAndAnOCILayout(t *testing.T) {
	s := teststack.Get(t)
	// An OCI layout directory of the sample app, written by an oci output.
	layout := filepath.Join(t.TempDir(), "layout")
	mustRun(t, pushRun(t, s, "ctx-layout", "main", map[string]string{"outputs": "type=oci,dest=" + layout + ",tar=false"}))
	extra := t.TempDir()
	if err := os.WriteFile(filepath.Join(extra, "extra.txt"), []byte("from the extra context\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, optsRun(t, s, "ctx-all", "contexts", map[string]string{
		"build-contexts": "base=docker-image://" + s.BaseImage + "\nextra=" + extra + "\nlayout=oci-layout://" + layout,
	}))
	image := s.Registry + "/ctx-all:latest"
	if got := imageFile(t, image, "/extra.txt"); got != "from the extra context\n" {
		t.Errorf("COPY --from=extra: %q", got)
	}
	if got := imageFile(t, image, "/layout-app.txt"); got != appTxt(t) {
		t.Errorf("COPY --from=layout: %q", got)
	}
	if got := imageFile(t, image, "/bin/busybox"); got == "" {
		t.Error("FROM base: no busybox from the docker-image context")
	}

	// Without them, the Dockerfile's names mean nothing.
	failRun(t, optsRun(t, s, "ctx-none", "contexts", nil))
	// target: is buildx bake's; it is refused with what to do instead.
	r := optsRun(t, s, "ctx-target", "contexts", map[string]string{"build-contexts": "base=target:other"})
	if err := failRun(t, r); !strings.Contains(err.Error(), "bake feature") {
		t.Errorf("target: context: %v", err)
	}
}
