package run_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cachemount"
	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/fakeecr"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/faultproxy"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// mountsInputs build testdata/mounts keeping its three cache mounts, named
// (so always seeded, whatever they cost: auto would drop these quick steps'
// mounts), appending runID to each; stamp reruns only the last step. The
// stack's builder is one the action did not start: every mount is named to
// be saved from it.
func mountsInputs(t *testing.T, s *teststack.Stack, runID, stamp string) map[string]string {
	t.Helper()
	dir, err := filepath.Abs("testdata/mounts")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"context":                     dir,
		"build-args":                  "BASE=" + s.BaseImage + "\nRUN_ID=" + runID + "\nSTAMP=" + stamp,
		"cache-mounts":                "/root/.cache/app, owned, locked-cache",
		"cache-mounts-shared-builder": "/root/.cache/app, owned, locked-cache",
	}
}

// seen reads what the image at ref saw in its cache mounts.
func seen(t *testing.T, ref string, auth authn.Authenticator) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range []string{"seen-app", "seen-owned", "seen-locked", "owned-perm", "tool-perm"} {
		v, err := teststack.ImageFile(ref, "/"+f, auth)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = strings.TrimSpace(v)
	}
	return out
}

func wantSeen(t *testing.T, got map[string]string, log string) {
	t.Helper()
	for _, f := range []string{"seen-app", "seen-owned", "seen-locked"} {
		if got[f] != log {
			t.Errorf("%s: the cache mount held %q, want %q", f, got[f], log)
		}
	}
	if got["owned-perm"] != "1000:1000 700" {
		t.Errorf("the uid/gid/mode cache mount is %q, want 1000:1000 700", got["owned-perm"])
	}
	if got["tool-perm"] != "1000:1000 6755 2" {
		t.Errorf("the setuid file with two names is %q, want 1000:1000 6755 2 (owner, mode with setuid and setgid, links)", got["tool-perm"])
	}
}

// mountsDigest is the manifest digest of the mounts artifact of key ("" when none).
func mountsDigest(t *testing.T, s *teststack.Stack, repo string, key cacheref.Key) string {
	t.Helper()
	d, found, err := teststack.Manifest(s.Registry+"/"+repo+":"+cacheref.MountsTag(cacheref.DefaultPrefix, key, "", ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		return ""
	}
	return d.Digest.String()
}

// What a RUN writes into its cache mounts survives a pruned builder: the next
// run of the branch sees it, a new branch's first run sees the default
// branch's, a run whose mounts did not change uploads nothing, and an untrusted
// run reads them but writes no artifact.
func TestCacheMountsPersistAcrossPrunedBuilders(t *testing.T) {
	s := teststack.Get(t)
	const repo = "mounts-app"
	image := s.Registry + "/" + repo + ":latest"
	main, feature := cacheref.BranchKey("main"), cacheref.BranchKey("feature/x")
	step := func(name, branch, runID string, edit func(*teststack.ActionRun)) *teststack.ActionRun {
		t.Helper()
		prune(t, s)
		r := pushRun(t, s, repo, branch, mountsInputs(t, s, runID, name))
		if edit != nil {
			edit(r)
		}
		if err := execRun(t, r); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, r.Stdout())
		}
		return r
	}

	r := step("first run", "main", "a", nil)
	wantSeen(t, seen(t, image, nil), "a")
	first := mountsDigest(t, s, repo, main)
	if first == "" {
		t.Fatalf("the first run saved no cache mounts artifact\n%s", r.Stdout())
	}

	// Restored as saved (the setuid file's two names included), the mounts
	// read back unchanged after a build that only ran its last step.
	r = step("first restore", "main", "a", nil)
	if !strings.Contains(r.Stdout(), "is up to date: nothing uploaded") || mountsDigest(t, s, repo, main) != first {
		t.Errorf("the first restore of unchanged mounts saved them again\n%s", r.Stdout())
	}
	wantSeen(t, seen(t, image, nil), "a")

	step("second run of main", "main", "b", nil)
	wantSeen(t, seen(t, image, nil), "a\nb")
	second := mountsDigest(t, s, repo, main)
	if second == first {
		t.Error("the second run changed the mounts but not their artifact")
	}

	step("new branch", "feature/x", "c", nil)
	wantSeen(t, seen(t, image, nil), "a\nb\nc")
	if mountsDigest(t, s, repo, feature) == "" {
		t.Error("the new branch saved no artifact of its own")
	}
	if mountsDigest(t, s, repo, main) != second {
		t.Error("the new branch's run rewrote main's artifact")
	}

	// The same mounts step again, through a proxy that counts writes: it comes
	// from the layer cache (only the last step runs), so the seeded mounts stay
	// as they were and nothing is uploaded.
	// The action's own registry calls are go-containerregistry's (BuildKit's
	// image and cache uploads are not), and only the mounts upload blobs.
	ua := map[string]string{"User-Agent": gcrUserAgent(t)}
	mountsTag := "^/v2/" + repo + "/manifests/" + cacheref.MountsTag(cacheref.DefaultPrefix, main, "", "") + "$"
	mountsGets := &faultproxy.Rule{Method: "GET", Path: mountsTag, Header: ua}
	mountsPuts := &faultproxy.Rule{Method: "PUT", Path: mountsTag}
	actionUploads := &faultproxy.Rule{Method: "POST", Path: "^/v2/" + repo + "/blobs/uploads/", Header: ua}
	proxy := faultyRegistry(t, s, mountsGets, mountsPuts, actionUploads)
	r = step("unchanged", "main", "b", func(r *teststack.ActionRun) { r.Env["INPUT_REGISTRY"] = proxy.URL })
	if mountsGets.Matched() == 0 {
		t.Fatalf("unchanged mounts: the run did not read its mounts through the proxy\n%s", r.Stdout())
	}
	if n, m := actionUploads.Matched(), mountsPuts.Matched(); n != 0 || m != 0 {
		t.Errorf("unchanged mounts: %d blob uploads and %d puts of the mounts tag, want none\n%s", n, m, r.Stdout())
	}
	if !strings.Contains(r.Stdout(), "is up to date: nothing uploaded") {
		t.Errorf("unchanged mounts: the run did not compare them with the saved ones\n%s", r.Stdout())
	}
	if mountsDigest(t, s, repo, main) != second {
		t.Error("unchanged mounts: main's artifact changed")
	}

	// A fork's pull request reads main's mounts (its base, develop, has none)
	// and writes no artifact, whatever it put in them.
	tagsBefore := teststack.MustTags(t, s.Registry+"/"+repo)
	step("fork pull request", "main", "d", func(r *teststack.ActionRun) {
		r.Env["INPUT_UNTRUSTED-PUSH"] = "true"
		fixtureEvent(t, r, "pull_request", "refs/pull/43/merge", "pull_request_fork.json")
	})
	wantSeen(t, seen(t, image, nil), "a\nb\nd")
	for _, tag := range teststack.MustTags(t, s.Registry+"/"+repo) {
		if !strings.Contains(strings.Join(tagsBefore, " "), tag) {
			t.Errorf("the untrusted run wrote tag %s", tag)
		}
	}
	if mountsDigest(t, s, repo, main) != second {
		t.Error("the untrusted run rewrote main's artifact")
	}
}

// Through the ECR double, with the ECR token: the mounts artifact is pushed in
// a form ECR's front accepts and seeds the next run on a pruned builder.
func TestCacheMountsThroughECR(t *testing.T) {
	s := teststack.Get(t)
	e := startECR(t, s, fakeecr.Repository{Name: "ecr-mounts"})
	for _, id := range []string{"a", "b"} {
		prune(t, s)
		r := ecrRun(t, s, e, "ecr-mounts", mountsInputs(t, s, id, ""))
		if err := execRun(t, r); err != nil {
			t.Fatalf("run %s: %v\n%s", id, err, r.Stdout())
		}
	}
	wantSeen(t, seen(t, e.RegistryHost+"/ecr-mounts:latest", ecrAuth(e)), "a\nb")
}

// A mount over cache-mounts-max-size is not saved, with a warning, and the
// build succeeds.
func TestCacheMountOverTheSizeLimitWarns(t *testing.T) {
	s := teststack.Get(t)
	const repo = "mounts-limit"
	prune(t, s) // a mount an earlier test filled in this builder is not saved
	in := mountsInputs(t, s, "a", "")
	in["cache-mounts"], in["cache-mounts-max-size"], in["cache-mounts-shared-builder"] = "/root/.cache/app", "1KiB", "/root/.cache/app"
	r := pushRun(t, s, repo, "main", in)
	if err := execRun(t, r); err != nil {
		t.Fatalf("run: %v\n%s", err, r.Stdout())
	}
	if !strings.Contains(r.Stdout(), `::warning::cache mounts: "/root/.cache/app" (line 10) is larger than cache-mounts-max-size (1.0 KiB): not saved`) {
		t.Errorf("no warning about the size limit:\n%s", r.Stdout())
	}
	if d := mountsDigest(t, s, repo, cacheref.BranchKey("main")); d != "" {
		t.Errorf("a mounts artifact was saved: %s", d)
	}
}

// A build that expects every step from the cache neither downloads the
// mounts (no RUN would read them) nor, when every step did come from the
// cache, reads them back.
func TestCacheMountsOfAFullyCachedBuildAreNotSeededNorSaved(t *testing.T) {
	s := teststack.Get(t)
	const repo = "mounts-cached"
	for i, tc := range []struct{ want, not []string }{
		{want: []string{"cache mounts: saved to"}},
		{want: []string{"cache mounts: not seeded: every step is expected to come from the cache", "no RUN changed the mounts: nothing to save"},
			not: []string{"cache mounts: imported", ") seeded:"}},
	} {
		prune(t, s)
		r := pushRun(t, s, repo, "main", mountsInputs(t, s, "a", ""))
		if err := execRun(t, r); err != nil {
			t.Fatalf("run %d: %v\n%s", i, err, r.Stdout())
		}
		for _, w := range tc.want {
			if !strings.Contains(r.Stdout(), w) {
				t.Errorf("run %d: the log lacks %q\n%s", i, w, r.Stdout())
			}
		}
		for _, n := range tc.not {
			if strings.Contains(r.Stdout(), n) {
				t.Errorf("run %d: the log has %q\n%s", i, n, r.Stdout())
			}
		}
	}
}

// ECR dates an image by its first push: an artifact a fully cached build
// leaves as it is gets old while every build uses it. Past
// cache-refresh-days it is put again (dated anew), and still seeds.
func TestECRKeepsCacheMountsAlive(t *testing.T) {
	s := teststack.Get(t)
	e := startECR(t, s, fakeecr.Repository{Name: "mounts-alive"})
	c := ecrClient(t, e)
	tag := cacheref.MountsTag(cacheref.DefaultPrefix, cacheref.BranchKey("main"), "", "")
	state := func() (string, time.Time) {
		t.Helper()
		d, found, err := teststack.Manifest(e.RegistryHost+"/mounts-alive:"+tag, ecrAuth(e))
		if err != nil || !found {
			t.Fatalf("%s: found=%v err=%v", tag, found, err)
		}
		pushed, err := c.PushedAt(context.Background(), "", "mounts-alive", tag)
		if err != nil {
			t.Fatal(err)
		}
		return d.Digest.String(), pushed
	}
	build := func(stamp string) string {
		t.Helper()
		prune(t, s)
		r := ecrRun(t, s, e, "mounts-alive", mountsInputs(t, s, "a", stamp))
		if err := execRun(t, r); err != nil {
			t.Fatalf("run: %v\n%s", err, r.Stdout())
		}
		return r.Stdout()
	}

	build("")
	first, _ := state()
	e.AgeImages(10 * 24 * time.Hour)
	log := build("")
	refreshed, pushed := state()
	if refreshed == first || time.Since(pushed) > time.Hour || !strings.Contains(log, "cache mounts: "+e.RegistryHost+"/mounts-alive:"+tag+" put again") {
		t.Fatalf("a 10-day-old artifact of a fully cached build: digest %s -> %s, pushed %v\n%s", first, refreshed, pushed, log)
	}
	// The refreshed artifact seeds the next build and, young and unchanged, stays.
	log = build("again")
	if now, _ := state(); now != refreshed || strings.Contains(log, "put again") || !strings.Contains(log, "is up to date: nothing uploaded") {
		t.Errorf("after the refresh: digest %s -> %s\n%s", refreshed, now, log)
	}
	wantSeen(t, seen(t, e.RegistryHost+"/mounts-alive:latest", ecrAuth(e)), "a")
}

// A cleanup run on a deleted branch deletes the branch's mounts artifact with
// its cache, and leaves the default branch's.
func TestCleanupDeletesTheBranchMounts(t *testing.T) {
	s := teststack.Get(t)
	const repo = "mounts-cleanup"
	b := distributionBackend(s, repo)
	for _, branch := range []string{"main", "feature/x"} {
		prune(t, s)
		r := pushRun(t, s, repo, branch, mountsInputs(t, s, branch, ""))
		if err := execRun(t, r); err != nil {
			t.Fatalf("%s: %v\n%s", branch, err, r.Stdout())
		}
	}
	mainMounts, featureMounts := cacheref.MountsTag(cacheref.DefaultPrefix, cacheref.BranchKey("main"), "", ""), cacheref.MountsTag(cacheref.DefaultPrefix, featureX, "", "")
	if tags := b.tags(t); !slices.Contains(tags, featureMounts) || !slices.Contains(tags, mainMounts) {
		t.Fatalf("tags %q lack the mounts artifacts %s, %s", tags, mainMounts, featureMounts)
	}
	deleted, log := cleanupRun(t, b, "delete", "refs/heads/main", "delete_branch.json")
	if !slices.Contains(deleted, featureMounts) {
		t.Errorf("deleted %q, not feature/x's mounts %s\n%s", deleted, featureMounts, log)
	}
	if tags := b.tags(t); slices.Contains(tags, featureMounts) || !slices.Contains(tags, mainMounts) {
		t.Errorf("after the cleanup: tags %q", tags)
	}
}

// gcrUserAgent is the User-Agent of the action's go-containerregistry calls:
// its name and module version, read from the action binary's build info.
func gcrUserAgent(t *testing.T) string {
	t.Helper()
	info, err := buildinfo.ReadFile(teststack.Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range info.Deps {
		if d.Path == "github.com/google/go-containerregistry" {
			return "go-containerregistry/" + d.Version
		}
	}
	t.Fatal("the action binary does not name go-containerregistry")
	return ""
}

// On a builder the action did not start, a mount another build filled (a
// fork's, on a shared daemon) is used as it is but never saved: the next
// trusted run keeps the saved artifact, and a fresh builder never sees the
// other build's files.
func TestSharedBuilderMountFilledByAnotherBuildIsNotSaved(t *testing.T) {
	s := teststack.Get(t)
	const repo = "mounts-shared"
	image := s.Registry + "/" + repo + ":latest"
	main := cacheref.BranchKey("main")
	run := func(name, runID string, edit func(*teststack.ActionRun)) string {
		t.Helper()
		r := pushRun(t, s, repo, "main", mountsInputs(t, s, runID, name))
		if edit != nil {
			edit(r)
		}
		if err := execRun(t, r); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, r.Stdout())
		}
		return r.Stdout()
	}

	prune(t, s)
	run("trusted", "a", nil)
	saved := mountsDigest(t, s, repo, main)
	if saved == "" {
		t.Fatal("the first run saved no mounts artifact")
	}
	prune(t, s)
	run("fork", "evil", func(r *teststack.ActionRun) {
		fixtureEvent(t, r, "pull_request", "refs/pull/43/merge", "pull_request_fork.json")
	})
	// The same builder, not pruned: its mounts hold the fork's files.
	log := run("trusted after the fork", "b", nil)
	if !strings.Contains(log, `cache mounts: "/root/.cache/app" (line 10) already holds files in this builder: kept as it is, and not saved`) {
		t.Errorf("the run did not say why it kept the builder's mount unsaved\n%s", log)
	}
	if got := mountsDigest(t, s, repo, main); got != saved {
		t.Errorf("the trusted run after the fork saved the builder's mounts: %s -> %s\n%s", saved, got, log)
	}
	prune(t, s)
	run("fresh builder", "c", nil)
	if got := seen(t, image, nil); strings.Contains(got["seen-app"]+got["seen-owned"]+got["seen-locked"], "evil") {
		t.Errorf("the fork's files reached a fresh builder: %q", got)
	}
	wantSeen(t, seen(t, image, nil), "a\nc")
}

// On a builder the action did not start, only the mounts
// cache-mounts-shared-builder names are saved, with a notice naming the others.
func TestSharedBuilderSavesOnlyTheNamedMounts(t *testing.T) {
	s := teststack.Get(t)
	const repo = "mounts-named"
	prune(t, s)
	in := mountsInputs(t, s, "a", "")
	in["cache-mounts"], in["cache-mounts-shared-builder"] = "auto", "owned"
	r := pushRun(t, s, repo, "main", in)
	if err := execRun(t, r); err != nil {
		t.Fatalf("run: %v\n%s", err, r.Stdout())
	}
	want := `::notice::cache mounts: "/root/.cache/app" (line 10), "locked-cache" (line 10) read but not saved: this run did not start its builder (buildkit-host input)`
	if !strings.Contains(r.Stdout(), want) {
		t.Errorf("no notice naming the unsaved mounts:\n%s", r.Stdout())
	}
	_, m := parsedManifest(t, s.Registry+"/"+repo+":"+cacheref.MountsTag(cacheref.DefaultPrefix, cacheref.BranchKey("main"), "", ""))
	var keys []string
	for _, l := range m.Layers {
		keys = append(keys, l.Annotations[cachemount.AnnotationKey])
	}
	if len(keys) != 1 || !strings.HasPrefix(keys[0], "/owned ") {
		t.Errorf("the artifact holds the mounts %q, want the owned mount alone", keys)
	}
}

// A hostile mounts artifact (write access to the cache repository is enough):
// a small blob that expands far past the limit, a damaged blob, and a sound
// one. The first two leave their own mounts empty with a warning, the third
// seeds, and the next save drops what was refused.
func TestHostileMountsArtifactSeedsOnlyItsSoundBlobs(t *testing.T) {
	s := teststack.Get(t)
	const repo = "mounts-hostile"
	ref := s.Registry + "/" + repo + ":" + cacheref.MountsTag(cacheref.DefaultPrefix, cacheref.BranchKey("main"), "", "")
	prune(t, s)
	if r := pushRun(t, s, repo, "main", mountsInputs(t, s, "a", "")); execRun(t, r) != nil {
		t.Fatalf("first run:\n%s", r.Stdout())
	}
	_, saved := parsedManifest(t, ref)
	key := map[string]string{} // mount key by the id's first letters
	for _, l := range saved.Layers {
		k := l.Annotations[cachemount.AnnotationKey]
		key[strings.TrimLeft(k, "/")[:3]] = k
	}

	// 64 MiB of zeros in a few KiB, annotated as 1 KiB; random bytes; a tar
	// holding the log "x".
	bomb := zstdTar(t, "zeros", io.LimitReader(zeroReader{}, 64<<20), 64<<20)
	damaged := make([]byte, 4096)
	rand.Read(damaged)
	sound := zstdTar(t, "log", strings.NewReader("x\n"), 2)
	pushMountsArtifact(t, ref, []hostileLayer{{key["roo"], bomb, "1024"}, {key["own"], damaged, "4096"}, {key["loc"], sound, "3072"}})

	prune(t, s)
	in := mountsInputs(t, s, "b", "")
	in["cache-mounts-max-size"] = "1MiB"
	r := pushRun(t, s, repo, "main", in)
	if err := execRun(t, r); err != nil {
		t.Fatalf("run: %v\n%s", err, r.Stdout())
	}
	for _, w := range []string{
		`::warning::cache mounts: the saved "/root/.cache/app" (line 10) in ` + ref + ` expands past cache-mounts-max-size and the size the artifact gives (1.0 MiB): not extracted, the mount starts empty`,
		`::warning::cache mounts: the saved "owned" (line 10) in ` + ref + ` is damaged (`,
		`cache mounts: "locked-cache" (line 10) seeded: 1 entries`,
	} {
		if !strings.Contains(r.Stdout(), w) {
			t.Errorf("the log lacks %q\n%s", w, r.Stdout())
		}
	}
	got := seen(t, s.Registry+"/"+repo+":latest", nil)
	if got["seen-app"] != "b" || got["seen-owned"] != "b" || got["seen-locked"] != "x\nb" {
		t.Errorf("the build saw app %q, owned %q, locked %q; want b, b and x+b", got["seen-app"], got["seen-owned"], got["seen-locked"])
	}
	_, after := parsedManifest(t, ref)
	for _, l := range after.Layers {
		if size, _ := strconv.ParseInt(l.Annotations[cachemount.AnnotationSize], 10, 64); size > 1<<20 {
			t.Errorf("the new artifact holds %s of %d bytes", l.Annotations[cachemount.AnnotationKey], size)
		}
		if l.Size == int64(len(bomb)) || l.Size == int64(len(damaged)) {
			t.Errorf("the new artifact keeps the refused blob of %s", l.Annotations[cachemount.AnnotationKey])
		}
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// zstdTar is a zstd-compressed tar of one file.
func zstdTar(t *testing.T, name string, r io.Reader, size int64) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, err := zstd.NewWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(tw, r); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(tw.Close(), zw.Close()); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type hostileLayer struct {
	key  string
	blob []byte
	size string // the size annotation
}

// pushMountsArtifact puts a mounts artifact of the given layers at ref, in the
// shape the action writes (cachemount's artifact.go).
func pushMountsArtifact(t *testing.T, ref string, layers []hostileLayer) {
	t.Helper()
	config := []byte(`{"kind":"cache-mounts","version":1}`)
	desc := func(mt types.MediaType, b []byte) v1.Descriptor {
		h, n, err := v1.SHA256(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return v1.Descriptor{MediaType: mt, Digest: h, Size: n}
	}
	blob := func(d v1.Descriptor, b []byte) registry.Blob {
		return registry.Blob{Descriptor: d, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
	}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: desc(cachemount.ConfigType, config)}
	blobs := []registry.Blob{blob(m.Config, config)}
	for _, l := range layers {
		d := desc("application/vnd.oci.image.layer.v1.tar+zstd", l.blob)
		d.Annotations = map[string]string{cachemount.AnnotationKey: l.key, cachemount.AnnotationSize: l.size,
			cachemount.AnnotationSum: "sha256:" + strings.Repeat("0", 64)}
		m.Layers = append(m.Layers, d)
		blobs = append(blobs, blob(d, l.blob))
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := registry.New(authn.DefaultKeychain, strings.SplitN(ref, "/", 2)[0]).PushArtifact(ctx, ref, blobs, raw); err != nil {
		t.Fatal(err)
	}
}

// With cache-mounts: auto, the artifact records what each mount cost and
// saved: its steps' time with the mount empty, then its transfer and its
// steps' time seeded. A mount that costs more than it saved is not seeded:
// its steps run on an empty mount, its saved contents stay, and its steps'
// new time is recorded; one that saves more is seeded.
func TestCacheMountCostsAreRecordedAndDecide(t *testing.T) {
	s := teststack.Get(t)
	const repo = "mounts-costs"
	ref := s.Registry + "/" + repo + ":" + cacheref.MountsTag(cacheref.DefaultPrefix, cacheref.BranchKey("main"), "", "")
	run := func(runID string) string {
		t.Helper()
		prune(t, s)
		in := mountsInputs(t, s, runID, "")
		in["cache-mounts"] = "auto"
		r := pushRun(t, s, repo, "main", in)
		if err := execRun(t, r); err != nil {
			t.Fatalf("run %s: %v\n%s", runID, err, r.Stdout())
		}
		return r.Stdout()
	}
	const app, owned = "//root/.cache/app", "/owned uid=1000 gid=1000 mode=700"
	layer := func(m *v1.Manifest, key string) *v1.Descriptor {
		t.Helper()
		for i, l := range m.Layers {
			if l.Annotations[cachemount.AnnotationKey] == key {
				return &m.Layers[i]
			}
		}
		t.Fatalf("no %s layer in %+v", key, m.Layers)
		return nil
	}
	has := func(l *v1.Descriptor, keys ...string) {
		t.Helper()
		for _, k := range keys {
			if n, err := strconv.Atoi(l.Annotations[k]); err != nil || n <= 0 {
				t.Errorf("%s: %s is %q, want a time in milliseconds", l.Annotations[cachemount.AnnotationKey], k, l.Annotations[k])
			}
		}
	}

	run("a")
	_, m := parsedManifest(t, ref)
	has(layer(m, app), cachemount.AnnotationEmpty)
	run("b")
	_, m = parsedManifest(t, ref)
	has(layer(m, app), cachemount.AnnotationEmpty, cachemount.AnnotationSeeded, cachemount.AnnotationTransfer)

	// Say restoring app took an hour, and owned saved an hour in a second.
	layer(m, app).Annotations[cachemount.AnnotationTransfer] = "3600000"
	o := layer(m, owned).Annotations
	o[cachemount.AnnotationTransfer], o[cachemount.AnnotationSeeded], o[cachemount.AnnotationEmpty] = "1000", "1000", "3600000"
	saved := *layer(m, app)
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := registry.New(authn.DefaultKeychain, s.Registry).PushArtifact(ctx, ref, nil, raw); err != nil {
		t.Fatal(err)
	}
	log := run("c")
	if want := `cache mounts: "/root/.cache/app" (line 10) not seeded: it costs more than it saves (restoring it took 1h0m0s`; !strings.Contains(log, want) {
		t.Errorf("the log lacks %q\n%s", want, log)
	}
	got := seen(t, s.Registry+"/"+repo+":latest", nil)
	if got["seen-app"] != "c" || got["seen-owned"] != "a\nb\nc" {
		t.Errorf("the build saw app %q and owned %q; want c (not seeded) and a+b+c (seeded)", got["seen-app"], got["seen-owned"])
	}
	_, m = parsedManifest(t, ref)
	after := layer(m, app)
	if after.Digest != saved.Digest || after.Annotations[cachemount.AnnotationTransfer] != "3600000" {
		t.Errorf("the skipped mount's saved contents changed: %s %v -> %s %v", saved.Digest, saved.Annotations, after.Digest, after.Annotations)
	}
	has(after, cachemount.AnnotationEmpty)
}
