package e2e_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// The multi-platform reusable workflow end to end: a matrix of two
// push-by-digest builds hands its digests to the merge job through staging
// tags in the registry; the index holds exactly the two platforms, under both
// tags. A second run on a pruned builder is fully cached in both legs, each
// from its own platform's cache tag.
func TestReusableMultiarchWorkflowMergesTheMatrixLegs(t *testing.T) {
	e := setup(t)
	s := e.stack
	repo := s.Registry + "/e2e-multiarch"
	prune(t, s)
	cold := e.act(t, "push", "multiarch.yml", "push.json", map[string]string{"REPOSITORY": "e2e-multiarch"})
	if n := strings.Count(cold.Log, "Job succeeded"); n != 5 {
		t.Errorf("%d jobs succeeded, want 5 (plan, two builds, merge, record):\n%s", n, tail(cold.Log, 4000))
	}
	if n := strings.Count(cold.Log, "0/3 steps cached"); n != 2 {
		t.Errorf("%d cold builds in the log, want one per platform:\n%s", n, tail(cold.Log, 4000))
	}
	o := cold.Outputs
	if o["platforms"] != "linux/amd64,linux/386" || o["image"] != repo+":latest" {
		t.Errorf("workflow outputs %v", o)
	}
	for _, tag := range []string{"latest", "v1"} {
		d, found, err := teststack.Manifest(repo+":"+tag, nil)
		if err != nil || !found {
			t.Fatalf("%s: found=%v, %v", tag, found, err)
		}
		var idx struct {
			MediaType string `json:"mediaType"`
			Manifests []struct {
				Platform struct{ OS, Architecture string } `json:"platform"`
			} `json:"manifests"`
			Annotations map[string]string `json:"annotations"`
		}
		if err := json.Unmarshal(d.Manifest, &idx); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range idx.Manifests {
			got = append(got, m.Platform.OS+"/"+m.Platform.Architecture)
		}
		slices.Sort(got)
		if d.Digest.String() != o["digest"] || idx.MediaType != "application/vnd.oci.image.index.v1+json" || !slices.Equal(got, []string{"linux/386", "linux/amd64"}) {
			t.Errorf("%s: %s %s of %q; want the digest output %s, an OCI index of linux/386 and linux/amd64", tag, d.Digest, idx.MediaType, got, o["digest"])
		}
		if idx.Annotations["org.opencontainers.image.description"] != "built on two runners" {
			t.Errorf("%s: index annotations %q", tag, idx.Annotations)
		}
	}
	tags, err := teststack.Tags(repo)
	if err != nil {
		t.Fatal(err)
	}
	staged := 0
	for _, tag := range tags {
		if strings.HasPrefix(tag, "cache-stage-") {
			staged++
		}
	}
	if staged != 2 {
		t.Errorf("%d staging tags in %q, want one per platform", staged, tags)
	}
	for _, p := range []string{"linux/amd64", "linux/386"} {
		mustExist(t, repo+":"+cacheref.Tag(cacheref.DefaultPrefix, cacheref.BranchKey("main"), "", p))
	}

	prune(t, s)
	warm := e.act(t, "push", "multiarch.yml", "push.json", map[string]string{"REPOSITORY": "e2e-multiarch"})
	if n := strings.Count(warm.Log, "3/3 steps cached"); n != 2 {
		t.Errorf("%d fully cached builds on a pruned builder, want one per platform:\n%s", n, tail(warm.Log, 4000))
	}
	// Each leg imported its own platform's cache. (The images' digests may
	// differ from the first run's: the two legs share this machine's one
	// buildkitd, which links their identical layers to one another's records,
	// with those records' timestamps; separate runners have separate builders.)
	for _, p := range []string{"linux/amd64", "linux/386"} {
		own := repo + ":" + cacheref.Tag(cacheref.DefaultPrefix, cacheref.BranchKey("main"), "", p)
		if !strings.Contains(warm.Log, "cache import: "+own+" (imported)") {
			t.Errorf("the %s leg did not import its own cache %s:\n%s", p, own, tail(warm.Log, 4000))
		}
	}
	if _, found, err := teststack.Manifest(repo+":latest", nil); err != nil || !found || warm.Outputs["digest"] == "" {
		t.Errorf("the second run pushed no index: %v, %v, outputs %v", found, err, warm.Outputs)
	}
}
