package run_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// Each test builds testdata/inputs (stages first and final; final reads two
// secrets) and checks the effect of one input in the pushed image or registry.

const (
	secretValue     = "s3cr3t-token-value-0a1b2c"
	fileSecretValue = "file-secret-9z8y7x"
)

func inputsRun(t *testing.T, s *teststack.Stack, repo string, extra map[string]string) *teststack.ActionRun {
	t.Helper()
	in := inputsApp(t)
	for k, v := range extra {
		in[k] = v
	}
	return pushRun(t, s, repo, "main", in)
}

// inputsApp are the inputs that build testdata/inputs with both its secrets.
func inputsApp(t *testing.T) map[string]string {
	t.Helper()
	dir, err := filepath.Abs("testdata/inputs")
	if err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secretFile, []byte(fileSecretValue), 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"context":      dir,
		"secrets":      "token=" + secretValue,
		"secret-files": "filetoken=" + secretFile,
	}
}

func TestBuildArgChangesFileContent(t *testing.T) {
	s := teststack.Get(t)
	mustRun(t, inputsRun(t, s, "in-args", map[string]string{"build-args": "BASE=" + s.BaseImage + "\nGREETING=bonjour, le monde"}))
	if got, err := teststack.ImageFile(s.Registry+"/in-args:latest", "/greeting", nil); err != nil || got != "bonjour, le monde\n" {
		t.Errorf("/greeting = %q, %v", got, err)
	}
}

func TestSecretsReachRunButNoOutputImageOrCache(t *testing.T) {
	s := teststack.Get(t)
	r := inputsRun(t, s, "in-secrets", nil)
	o := mustRun(t, r)
	image := s.Registry + "/in-secrets:latest"
	for file, want := range map[string]int{"/token-length": len(secretValue), "/filetoken-length": len(fileSecretValue)} {
		got, err := teststack.ImageFile(image, file, nil)
		if err != nil || strings.TrimSpace(got) != strconv.Itoa(want) {
			t.Errorf("%s = %q, %v; want %d: the RUN step did not read the secret", file, got, err, want)
		}
	}
	for _, secret := range []string{secretValue, fileSecretValue} {
		for _, ref := range []string{image, o["cache-ref"]} {
			if hit, err := teststack.Contains(ref, []byte(secret), nil); err != nil || hit {
				t.Errorf("secret in %s: %v, %v", ref, hit, err)
			}
		}
		for where, text := range map[string]string{"stdout": withoutMaskCommands(r.Stdout()), "outputs": readFile(t, r.OutputFile), "summary": r.Summary(t)} {
			if strings.Contains(text, secret) {
				t.Errorf("secret leaked into %s", where)
			}
		}
	}
	if !strings.Contains(r.Stdout(), "::add-mask::"+secretValue) {
		t.Error("the secrets input's value was not masked")
	}
}

func TestTargetBuildsTheNamedStageOnly(t *testing.T) {
	s := teststack.Get(t)
	o := mustRun(t, inputsRun(t, s, "in-target", map[string]string{"target": "first", "secrets": "", "secret-files": ""}))
	image := s.Registry + "/in-target:latest"
	if _, err := teststack.ImageFile(image, "/greeting", nil); err != nil {
		t.Errorf("stage first's file missing: %v", err)
	}
	if _, err := teststack.ImageFile(image, "/stamp.txt", nil); err == nil {
		t.Error("stage final's /stamp.txt is in an image built with target: first")
	}
	if _, n := steps(t, o); n != 1 {
		t.Errorf("total-steps = %d, want 1 (stage first has one RUN)", n)
	}
}

func TestPlatformsPushAnIndexWithBoth(t *testing.T) {
	s := teststack.Get(t)
	mustRun(t, inputsRun(t, s, "in-platforms", map[string]string{
		"platforms":   "linux/amd64,linux/386",
		"annotations": "index:org.opencontainers.image.description=two platforms",
	}))
	idx := index(t, s.Registry+"/in-platforms:latest")
	var got []string
	for _, m := range idx.Manifests {
		got = append(got, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	slices.Sort(got)
	if idx.MediaType != "application/vnd.oci.image.index.v1+json" || !slices.Equal(got, []string{"linux/386", "linux/amd64"}) {
		t.Errorf("pushed %s with platforms %q, want an OCI index of linux/386 and linux/amd64", idx.MediaType, got)
	}
	if idx.Annotations["org.opencontainers.image.description"] != "two platforms" {
		t.Errorf("index annotations %q", idx.Annotations)
	}
}

func TestLabelsAndAnnotationsAppearInConfigAndManifest(t *testing.T) {
	s := teststack.Get(t)
	mustRun(t, inputsRun(t, s, "in-labels", map[string]string{
		"labels":      "org.example.team=build, cache\norg.example.tier=gold",
		"annotations": "org.example.note=annotated",
	}))
	d, found, err := teststack.Manifest(s.Registry+"/in-labels:latest", nil)
	if err != nil || !found {
		t.Fatalf("image: %v %v", found, err)
	}
	img, err := d.Image()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if l := cf.Config.Labels; l["org.example.team"] != "build, cache" || l["org.example.tier"] != "gold" {
		t.Errorf("labels %q", l)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Annotations["org.example.note"] != "annotated" {
		t.Errorf("manifest annotations %q", m.Annotations)
	}
}

func TestNoCacheRunsEveryStep(t *testing.T) {
	s := teststack.Get(t)
	mustRun(t, inputsRun(t, s, "in-nocache", nil))
	prune(t, s)
	if c, n := steps(t, mustRun(t, inputsRun(t, s, "in-nocache", nil))); c != n || n != 4 {
		t.Fatalf("rebuild without no-cache: %d/%d cached; the test needs a warm cache", c, n)
	}
	o := mustRun(t, inputsRun(t, s, "in-nocache", map[string]string{"no-cache": "true"}))
	if c, n := steps(t, o); c != 0 || n != 4 {
		t.Errorf("no-cache: %d/%d steps cached, want 0/4", c, n)
	}
	// The steps ran once: the pushed image's layers are the exported cache's.
	image, cache := layersOf(t, s.Registry+"/in-nocache:latest"), layersOf(t, o["cache-ref"])
	for l := range image {
		if !cache[l] {
			t.Errorf("image layer %s is not in the cache: the push or the export ran the steps again", l)
		}
	}
}

func layersOf(t *testing.T, ref string) map[string]bool {
	t.Helper()
	d, found, err := teststack.Manifest(ref, nil)
	if err != nil || !found {
		t.Fatalf("%s: found=%v %v", ref, found, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(d.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, l := range m.Layers {
		out[l.Digest.String()] = true
	}
	return out
}

func TestPushFalseBuildsAndCachesWithoutPushingTheImage(t *testing.T) {
	s := teststack.Get(t)
	o := mustRun(t, inputsRun(t, s, "in-nopush", map[string]string{"push": "false"}))
	if _, found, err := teststack.Manifest(s.Registry+"/in-nopush:latest", nil); err != nil || found {
		t.Errorf("image tag exists with push: false (found=%v, %v)", found, err)
	}
	if _, found, err := teststack.Manifest(o["cache-ref"], nil); err != nil || !found {
		t.Errorf("cache not exported with push: false (found=%v, %v)", found, err)
	}
}

func TestProvenanceAddsAnAttestationManifest(t *testing.T) {
	s := teststack.Get(t)
	mustRun(t, inputsRun(t, s, "in-provenance", map[string]string{"provenance": "mode=min"}))
	idx := index(t, s.Registry+"/in-provenance:latest")
	// This is the entry ECR lists as an unknown/unknown image (build-push-action#826).
	if !slices.ContainsFunc(idx.Manifests, func(m indexEntry) bool {
		return m.Annotations["vnd.docker.reference.type"] == "attestation-manifest" && m.Platform.OS == "unknown"
	}) {
		t.Errorf("no unknown/unknown attestation manifest in the pushed index: %+v", idx)
	}
}

type indexEntry struct {
	Digest      string                            `json:"digest"`
	Annotations map[string]string                 `json:"annotations"`
	Platform    struct{ OS, Architecture string } `json:"platform"`
}

type ociIndex struct {
	MediaType   string            `json:"mediaType"`
	Manifests   []indexEntry      `json:"manifests"`
	Annotations map[string]string `json:"annotations"`
}

// index fetches the image index pushed to ref.
func index(t *testing.T, ref string) ociIndex {
	t.Helper()
	d, found, err := teststack.Manifest(ref, nil)
	if err != nil || !found {
		t.Fatalf("%s: found=%v, %v", ref, found, err)
	}
	var idx ociIndex
	if err := json.Unmarshal(d.Manifest, &idx); err != nil {
		t.Fatal(err)
	}
	return idx
}

// A failing step is one error annotation, on its Dockerfile line (the
// binary, as the runner starts it: the runner shows every ::error line).
func TestFailingStepPointsAtItsDockerfileLine(t *testing.T) {
	s := teststack.Get(t)
	dir, err := filepath.Abs("testdata/failing")
	if err != nil {
		t.Fatal(err)
	}
	r := pushRun(t, s, "failing", "main", map[string]string{"context": dir})
	if err := execRun(t, r); err == nil {
		t.Fatalf("a failing RUN did not fail the run:\n%s", r.Stdout())
	}
	want := "::error file=" + filepath.Join(dir, "Dockerfile") + ",line=4::"
	if n := strings.Count(r.Stdout(), "::error"); n != 1 || !strings.Contains(r.Stdout(), want) {
		t.Errorf("%d error annotations; want one, %q:\n%s", n, want, r.Stdout())
	}
	if _, found, _ := teststack.Manifest(s.Registry+"/failing:latest", nil); found {
		t.Error("a failed build pushed an image")
	}
}
