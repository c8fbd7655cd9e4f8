package run_test

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/fakeecr"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// digestRun is one leg of a multi-platform matrix: a push-by-digest build of
// the sample app in workflow run 4242. platform "" builds the builder's own.
func digestRun(t *testing.T, s *teststack.Stack, repo, platform string) *teststack.ActionRun {
	t.Helper()
	r := pushRun(t, s, repo, "main", map[string]string{"tags": "", "push-by-digest": "true", "platforms": platform})
	r.Env["GITHUB_RUN_ID"], r.Env["GITHUB_RUN_ATTEMPT"] = "4242", "1"
	return r
}

// mergeRun is the merge step of workflow run 4242: no checkout, no builder.
func mergeRun(t *testing.T, s *teststack.Stack, repo string, inputs map[string]string) *teststack.ActionRun {
	t.Helper()
	in := map[string]string{"registry": "http://" + s.Registry, "repository": repo}
	for k, v := range inputs {
		in[k] = v
	}
	r := teststack.NewActionRun(t, in)
	if err := r.SetPush("main", "main"); err != nil {
		t.Fatal(err)
	}
	r.Env["GITHUB_RUN_ID"], r.Env["GITHUB_RUN_ATTEMPT"] = "4242", "2" // a re-run of the merge job alone
	return r
}

// Two legs of one branch build linux/amd64 (the builder's own platform, no
// platforms input) and linux/386 by digest; the merge step pushes an index of
// exactly those two under its tags; pruned rebuilds are fully cached from each
// platform's own cache tag.
func TestPushByDigestLegsMergeIntoOneIndex(t *testing.T) {
	s := teststack.Get(t)
	const repoName = "multiarch"
	repo := s.Registry + "/" + repoName
	prune(t, s)
	legs := map[string]map[string]string{}
	for _, p := range []string{"", "linux/386"} {
		r := digestRun(t, s, repoName, p)
		o := mustRun(t, r)
		platform := o["platform"]
		legs[platform] = o
		if o["pushed"] != "true" || o["digest"] == "" || o["image"] != repo+"@"+o["digest"] {
			t.Errorf("%s: pushed %q, digest %q, image %q; want the image pushed as %s@<digest>", platform, o["pushed"], o["digest"], o["image"], repo)
		}
		if want := cacheref.Tag(cacheref.DefaultPrefix, cacheref.BranchKey("main"), "", platform); o["cache-ref"] != repo+":"+want {
			t.Errorf("%s: cache-ref %q, want the platform's own %s", platform, o["cache-ref"], want)
		}
		if !strings.Contains(r.Stdout(), "staged "+o["image"]+" for the merge step as "+repo+":cache-stage-4242-1-") {
			t.Errorf("%s: the log does not say the image was staged:\n%s", platform, r.Stdout())
		}
	}
	if _, ok := legs["linux/amd64"]; !ok {
		t.Fatalf("the leg without platforms built %q; want the builder's linux/amd64", slices.Collect(maps.Keys(legs)))
	}
	if legs["linux/amd64"]["cache-ref"] == legs["linux/386"]["cache-ref"] {
		t.Errorf("both platforms export to %s", legs["linux/amd64"]["cache-ref"])
	}
	for _, tag := range teststack.MustTags(t, repo) {
		if !strings.HasPrefix(tag, "cache-") {
			t.Errorf("push-by-digest left tag %q; want only cache and staging tags", tag)
		}
	}

	r := mergeRun(t, s, repoName, map[string]string{
		"tags": "latest, v1", "merge-platforms": "linux/amd64,linux/386",
		"annotations": "index:org.opencontainers.image.description=two runners",
	})
	o := mustRun(t, r)
	want := []string{"linux/386@" + legs["linux/386"]["digest"], "linux/amd64@" + legs["linux/amd64"]["digest"]}
	for _, tag := range []string{"latest", "v1"} {
		idx := index(t, repo+":"+tag)
		var got []string
		for _, m := range idx.Manifests {
			got = append(got, m.Platform.OS+"/"+m.Platform.Architecture+"@"+m.Digest)
		}
		slices.Sort(got)
		if idx.MediaType != "application/vnd.oci.image.index.v1+json" || !slices.Equal(got, want) {
			t.Errorf("%s: %s of %q; want an OCI index of %q", tag, idx.MediaType, got, want)
		}
		if idx.Annotations["org.opencontainers.image.description"] != "two runners" {
			t.Errorf("%s: index annotations %q", tag, idx.Annotations)
		}
		if d, _, err := teststack.Manifest(repo+":"+tag, nil); err != nil || d.Digest.String() != o["digest"] {
			t.Errorf("%s: digest %v (%v), digest output %q", tag, d.Digest, err, o["digest"])
		}
	}
	if o["image"] != repo+":latest" || o["platform"] != "linux/amd64,linux/386" || !strings.Contains(o["metadata"], `"containerimage.digest":"`+o["digest"]+`"`) {
		t.Errorf("merge outputs %v", o)
	}

	// The same digests handed over as given: the same index.
	byDigest := mustRun(t, mergeRun(t, s, repoName, map[string]string{
		"tags":          "by-digests",
		"merge-digests": legs["linux/amd64"]["digest"] + "\n" + legs["linux/386"]["image"],
		"annotations":   "index:org.opencontainers.image.description=two runners",
	}))
	if byDigest["digest"] != o["digest"] {
		t.Errorf("merge-digests pushed %s, merge-platforms %s; want the same index", byDigest["digest"], o["digest"])
	}

	// Fresh runners: each leg is fully cached from its own platform's tag.
	for platform, first := range legs {
		p := platform
		if p == "linux/amd64" {
			p = "" // as the first time: the builder's own platform
		}
		prune(t, s)
		r := digestRun(t, s, repoName, p)
		again := mustRun(t, r)
		if c, n := steps(t, again); c != n || n != 3 {
			t.Errorf("%s rebuilt on a pruned builder with %d/%d steps cached, want 3/3\n%s", platform, c, n, r.Stdout())
		}
		if again["cache-hit-ref"] != first["cache-ref"] || again["digest"] != first["digest"] {
			t.Errorf("%s: served by %q (digest %s); want its own %q (digest %s)", platform, again["cache-hit-ref"], again["digest"], first["cache-ref"], first["digest"])
		}
	}

	t.Run("refusals", func(t *testing.T) {
		missing := "sha256:" + strings.Repeat("0", 64)
		for _, tc := range []struct {
			name   string
			inputs map[string]string
			want   []string
		}{
			{"missing and duplicate", map[string]string{"merge-digests": missing + "," + legs["linux/386"]["digest"] + "," + legs["linux/386"]["image"]},
				[]string{repo + "@" + missing + ": no such manifest in " + repo, "are both linux/386: an index holds one image per platform"}},
			{"empty list", map[string]string{"merge-digests": ",\n"}, []string{"merge-digests: no digest in"}},
			{"nothing staged", map[string]string{"merge-platforms": "linux/amd64,linux/arm64"},
				[]string{"linux/arm64: no image staged in " + repo + " by run 4242 (attempts 1 to 2)"}},
		} {
			tc.inputs["tags"] = "refused"
			r := mergeRun(t, s, repoName, tc.inputs)
			_, err := tryRun(t, r)
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("%s: error %v; want %q", tc.name, err, w)
				}
			}
		}
		if _, found, err := teststack.Manifest(repo+":refused", nil); err != nil || found {
			t.Errorf("a refused merge pushed a tag (found=%v, %v)", found, err)
		}
	})
}

// One builder, two platforms: the pushed index's layers (both platforms')
// point at the run's own cache on a pruned rebuild.
func TestMultiPlatformBuildIsServedByItsOwnCache(t *testing.T) {
	s := teststack.Get(t)
	in := map[string]string{"platforms": "linux/amd64,linux/386"}
	prune(t, s)
	first := mustRun(t, pushRun(t, s, "multi-one-builder", "main", in))
	prune(t, s)
	r := pushRun(t, s, "multi-one-builder", "main", in)
	o := mustRun(t, r)
	if c, n := steps(t, o); c != n || n != 6 {
		t.Errorf("rebuild: %d/%d steps cached, want 6/6 (3 per platform)\n%s", c, n, r.Stdout())
	}
	if o["cache-hit-ref"] != first["cache-ref"] || o["platform"] != "linux/amd64,linux/386" {
		t.Errorf("cache-hit-ref %q, platform %q; want %q and both platforms", o["cache-hit-ref"], o["platform"], first["cache-ref"])
	}
}

// The same flow against the ECR double, logged in through the AWS SDK like
// every run, in a repository with immutable tags except the cache-* ones
// (the staging tags are among them): the legs and the merge as processes.
func TestPushByDigestAndMergeThroughECR(t *testing.T) {
	s := teststack.Get(t)
	e := startECR(t, s, fakeecr.Repository{Name: "ecr-multi", Mutability: fakeecr.ImmutableWithExclusion, ExclusionFilters: []string{"cache-*"}})
	withRun := func(r *teststack.ActionRun) *teststack.ActionRun {
		r.Env["GITHUB_RUN_ID"], r.Env["GITHUB_RUN_ATTEMPT"] = "77", "1"
		return r
	}
	digests := map[string]string{}
	for _, p := range []string{"linux/amd64", "linux/386"} {
		r := withRun(ecrRun(t, s, e, "ecr-multi", map[string]string{"tags": "", "push-by-digest": "true", "platforms": p}))
		if err := execRun(t, r); err != nil {
			t.Fatalf("%s: %v\n%s", p, err, r.Stdout())
		}
		digests[p] = r.Outputs(t)["digest"]
	}
	r := withRun(ecrRun(t, s, e, "ecr-multi", map[string]string{"tags": "v1", "merge-platforms": "linux/amd64,linux/386"}))
	for _, build := range []string{"INPUT_CONTEXT", "INPUT_BUILD-ARGS", "INPUT_BUILDKIT-HOST"} {
		delete(r.Env, build)
	}
	if err := execRun(t, r); err != nil {
		t.Fatalf("merge: %v\n%s", err, r.Stdout())
	}
	o := r.Outputs(t)
	d, found, err := teststack.Manifest(e.RegistryHost+"/ecr-multi:v1", ecrAuth(e))
	if err != nil || !found || d.Digest.String() != o["digest"] {
		t.Fatalf("index in ECR: found=%v, %v, digest %v; output %q", found, err, d, o["digest"])
	}
	var idx ociIndex
	if err := json.Unmarshal(d.Manifest, &idx); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range idx.Manifests {
		got = append(got, m.Platform.OS+"/"+m.Platform.Architecture+"@"+m.Digest)
	}
	slices.Sort(got)
	if want := []string{"linux/386@" + digests["linux/386"], "linux/amd64@" + digests["linux/amd64"]}; !slices.Equal(got, want) {
		t.Errorf("index entries %q, want %q", got, want)
	}
}
