package run_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/solve"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/fakeecr"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// manifestAnnotations reads the annotations of the image manifest at ref.
func manifestAnnotations(t *testing.T, ref string) map[string]string {
	t.Helper()
	d, found, err := teststack.Manifest(ref, nil)
	if err != nil || !found {
		t.Fatalf("%s: found=%v, %v", ref, found, err)
	}
	var m struct{ Annotations map[string]string }
	if err := json.Unmarshal(d.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	return m.Annotations
}

// The cold build says why it was cold and records its steps' times with the
// cache; the rebuild on a pruned builder, served by that cache, says what the
// cache saved: the sample app's first RUN sleeps a second.
func TestSummaryShowsWhatTheCacheSavedOnARealBuild(t *testing.T) {
	s := teststack.Get(t)
	prune(t, s)
	r := pushRun(t, s, "summary-saved", "main", nil)
	cold := mustRun(t, r)
	sum := r.Summary(t)
	for _, want := range []string{"| Cold build | no cache yet: none of " + cold["cache-ref"] + " exists", "| Build time | ", "| Push | ", "| Step that ran | Seconds |"} {
		if !strings.Contains(sum, want) {
			t.Errorf("cold summary lacks %q:\n%s", want, sum)
		}
	}
	if cold["cache-saved-seconds"] != "0" || cold["registry"] != s.Registry {
		t.Errorf("cold build: cache-saved-seconds %q, registry %q; want 0 and %s", cold["cache-saved-seconds"], cold["registry"], s.Registry)
	}
	times := solve.DecodeTimes(manifestAnnotations(t, cold["cache-ref"])[solve.StepsAnnotation])
	if len(times) == 0 {
		t.Fatalf("the cache %s records no step times", cold["cache-ref"])
	}

	prune(t, s)
	r = pushRun(t, s, "summary-saved", "main", nil)
	warm := mustRun(t, r)
	sum = r.Summary(t)
	saved, err := strconv.Atoi(warm["cache-saved-seconds"])
	if c, n := steps(t, warm); c != n || err != nil || saved < 1 {
		t.Fatalf("rebuild: %d/%d cached, cache-saved-seconds %q (%v); want all cached and at least the 1 s the first RUN sleeps\n%s", c, n, warm["cache-saved-seconds"], err, sum)
	}
	for _, re := range []string{
		`\| Cached steps \| 3/3: cache saved about ` + warm["cache-saved-seconds"] + ` s \|`,
		`<details><summary>3 cached steps: saved about ` + warm["cache-saved-seconds"] + ` s</summary>`,
		"\\| `\\[2/4\\] RUN echo compiled > /compiled && sleep 1` \\| 1\\.\\d\\d \\|",
		"\\| `\\[3/4\\] COPY app.txt /app/app.txt` \\| (under 0\\.1|0\\.\\d\\d) \\|",
	} {
		if !regexp.MustCompile(re).MatchString(sum) {
			t.Errorf("warm summary does not match %s:\n%s", re, sum)
		}
	}
	if strings.Contains(sum, "Cold build") || strings.Contains(sum, "Step that ran") {
		t.Errorf("a fully cached build lists steps that ran or says it was cold:\n%s", sum)
	}
}

// docker/metadata-action's outputs for images: my-app, given as they are with
// repository: my-app, land in that ECR repository, labelled and annotated.
func TestMetadataActionOutputsLandInTheECRRepository(t *testing.T) {
	s := teststack.Get(t)
	e := startECR(t, s, fakeecr.Repository{Name: "my-app"})
	inputs := map[string]string{"repository": "my-app"}
	for _, out := range []string{"tags", "labels", "annotations"} {
		b, err := os.ReadFile(filepath.Join("..", "config", "testdata", "metadata-action", "short-name", out))
		if err != nil {
			t.Fatal(err)
		}
		inputs[out] = string(b)
	}
	r := ecrRun(t, s, e, "my-app", inputs)
	if err := execRun(t, r); err != nil {
		t.Fatalf("run: %v\n%s", err, r.Stdout())
	}
	o := r.Outputs(t)
	if o["image"] != e.RegistryHost+"/my-app:main" || o["registry"] != e.RegistryHost {
		t.Errorf("image %q, registry %q; want %s/my-app:main and %s", o["image"], o["registry"], e.RegistryHost, e.RegistryHost)
	}
	for _, tag := range []string{"main", "sha-860c190"} {
		d, found, err := teststack.Manifest(e.RegistryHost+"/my-app:"+tag, ecrAuth(e))
		if err != nil || !found {
			t.Errorf("my-app:%s not in the ECR repository: found=%v, %v", tag, found, err)
			continue
		}
		var m struct{ Annotations map[string]string }
		if err := json.Unmarshal(d.Manifest, &m); err != nil || m.Annotations["org.opencontainers.image.revision"] != "860c1904a1ce19322e91ac35af1ab07466440c37" {
			t.Errorf("my-app:%s manifest annotations %v (%v)", tag, m.Annotations, err)
		}
	}
}

// The cache mounts row and output say whether the mounts were saved or came
// through unchanged.
func TestSummaryAndOutputReportCacheMounts(t *testing.T) {
	s := teststack.Get(t)
	const repo = "summary-mounts"
	run := func(stamp string) (map[string]string, string) {
		t.Helper()
		r := pushRun(t, s, repo, "main", mountsInputs(t, s, "a", stamp))
		if err := execRun(t, r); err != nil {
			t.Fatalf("run: %v\n%s", err, r.Stdout())
		}
		return r.Outputs(t), r.Summary(t)
	}
	prune(t, s)
	o, sum := run("one")
	ref := s.Registry + "/" + repo + ":" + cacheref.MountsTag(cacheref.DefaultPrefix, cacheref.BranchKey("main"), "", "")
	if want := "| Cache mounts | saved to `" + ref + "` where changed"; o["cache-mounts"] != "saved" || !strings.Contains(sum, want) {
		t.Errorf("first run: cache-mounts %q; want saved and a summary row %q:\n%s", o["cache-mounts"], want, sum)
	}
	// The same build again on the same builder: every step is cached.
	o, sum = run("one")
	if o["cache-mounts"] != "unchanged" || !strings.Contains(sum, "| Cache mounts | unchanged: every step came from the cache") {
		t.Errorf("cached run: cache-mounts %q:\n%s", o["cache-mounts"], sum)
	}
}
