package fakeecr_test

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/fakeecr"
)

// push writes img through the front under each tag.
func (st *stack) push(t *testing.T, pw string, img v1.Image, repo string, tags ...string) v1.Hash {
	t.Helper()
	for _, tag := range tags {
		if err := remote.Write(st.ref(t, repo+":"+tag), img, awsAuth(pw)); err != nil {
			t.Fatalf("push %s:%s: %v", repo, tag, err)
		}
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// tagged lists repo's tags through ListImages, following every page.
func tagged(t *testing.T, c *ecr.Client, repo string) map[string]string {
	t.Helper()
	out := map[string]string{}
	p := ecr.NewListImagesPaginator(c, &ecr.ListImagesInput{RepositoryName: aws.String(repo),
		Filter: &types.ListImagesFilter{TagStatus: types.TagStatusTagged}, MaxResults: aws.Int32(2)})
	for p.HasMorePages() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatalf("ListImages: %v", err)
		}
		for _, id := range page.ImageIds {
			out[aws.ToString(id.ImageTag)] = aws.ToString(id.ImageDigest)
		}
	}
	return out
}

func exists(t *testing.T, st *stack, pw, ref string) bool {
	t.Helper()
	_, err := remote.Head(st.ref(t, ref), awsAuth(pw))
	if err == nil {
		return true
	}
	wantRegistryError(t, err, http.StatusNotFound, "")
	return false
}

func imageID(tag, digest string) types.ImageIdentifier {
	var id types.ImageIdentifier
	if tag != "" {
		id.ImageTag = aws.String(tag)
	}
	if digest != "" {
		id.ImageDigest = aws.String(digest)
	}
	return id
}

// BatchDeleteImage by tag removes the tag; the image goes with its last tag.
// What cannot be done is a failure in the response, per image id.
func TestBatchDeleteImage(t *testing.T) {
	t.Parallel()
	st := startStack(t, fakeecr.Repository{Name: "app"})
	pw := login(t, st.Server)
	c := client(t, st.Server, fakeecr.DefaultAccessKeyID, fakeecr.DefaultRegion)
	a := st.push(t, pw, randomImage(t), "app", "a1", "a2")
	b := st.push(t, pw, randomImage(t), "app", "b")
	missing := "sha256:" + strings.Repeat("0", 64)

	out, err := c.BatchDeleteImage(t.Context(), &ecr.BatchDeleteImageInput{RepositoryName: aws.String("app"), ImageIds: []types.ImageIdentifier{
		imageID("a1", ""), imageID("b", ""), imageID("nope", ""), imageID("", missing), imageID("a2", b.String()), {},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var deleted []string
	for _, id := range out.ImageIds {
		deleted = append(deleted, aws.ToString(id.ImageTag)+"@"+aws.ToString(id.ImageDigest))
	}
	if want := []string{"a1@" + a.String(), "b@" + b.String()}; !slices.Equal(deleted, want) {
		t.Errorf("deleted %q, want %q", deleted, want)
	}
	var failures []string
	for _, f := range out.Failures {
		failures = append(failures, aws.ToString(f.ImageId.ImageTag)+"@"+aws.ToString(f.ImageId.ImageDigest)+" "+string(f.FailureCode)+": "+aws.ToString(f.FailureReason))
	}
	if want := []string{
		"nope@ ImageNotFound: Requested image not found",
		"@" + missing + " ImageNotFound: Requested image not found",
		"a2@" + b.String() + " ImageTagDoesNotMatchDigest: Invalid request parameters: image tag digest did not match image digest",
		"@ MissingDigestAndTag: Invalid request parameters: both tag and digest cannot be null",
	}; !slices.Equal(failures, want) {
		t.Errorf("failures\n%q, want\n%q", failures, want)
	}

	// a1 is gone, a2 still names the image; b's image went with its only tag.
	if exists(t, st, pw, "app:a1") || !exists(t, st, pw, "app:a2") || !exists(t, st, pw, "app@"+a.String()) ||
		exists(t, st, pw, "app:b") || exists(t, st, pw, "app@"+b.String()) {
		t.Error("the registry does not show a1 untagged, a2 kept and b deleted")
	}
	if got := tagged(t, c, "app"); len(got) != 1 || got["a2"] != a.String() {
		t.Errorf("ListImages after the delete: %v, want only a2", got)
	}

	// By digest, the image goes with every tag.
	if _, err := c.BatchDeleteImage(t.Context(), &ecr.BatchDeleteImageInput{RepositoryName: aws.String("app"),
		ImageIds: []types.ImageIdentifier{imageID("", a.String())}}); err != nil {
		t.Fatal(err)
	}
	if exists(t, st, pw, "app:a2") || len(tagged(t, c, "app")) != 0 {
		t.Error("deleting by digest left a tag")
	}

	for name, in := range map[string]*ecr.BatchDeleteImageInput{
		"no image ids":   {RepositoryName: aws.String("app"), ImageIds: []types.ImageIdentifier{}},
		"101 image ids":  {RepositoryName: aws.String("app"), ImageIds: make([]types.ImageIdentifier, 101)},
		"no such repo":   {RepositoryName: aws.String("nope"), ImageIds: []types.ImageIdentifier{imageID("x", "")}},
		"other registry": {RegistryId: aws.String("210987654321"), RepositoryName: aws.String("app"), ImageIds: []types.ImageIdentifier{imageID("x", "")}},
	} {
		var invalid *types.InvalidParameterException
		var notFound *types.RepositoryNotFoundException
		if _, err := c.BatchDeleteImage(t.Context(), in); !errors.As(err, &invalid) && !errors.As(err, &notFound) {
			t.Errorf("%s: err %v, want InvalidParameterException or RepositoryNotFoundException", name, err)
		}
	}
}

// ECR refuses to delete an image an index references, as a per-image failure.
func TestBatchDeleteImageKeepsManifestsAnIndexReferences(t *testing.T) {
	t.Parallel()
	st := startStack(t, fakeecr.Repository{Name: "multi"})
	pw := login(t, st.Server)
	c := client(t, st.Server, fakeecr.DefaultAccessKeyID, fakeecr.DefaultRegion)
	idx, err := random.Index(256, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(st.ref(t, "multi:v1"), idx, awsAuth(pw)); err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	child := im.Manifests[0].Digest.String()
	del := func(ids ...types.ImageIdentifier) *ecr.BatchDeleteImageOutput {
		t.Helper()
		out, err := c.BatchDeleteImage(t.Context(), &ecr.BatchDeleteImageInput{RepositoryName: aws.String("multi"), ImageIds: ids})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	out := del(imageID("", child))
	if len(out.ImageIds) != 0 || len(out.Failures) != 1 || out.Failures[0].FailureCode != types.ImageFailureCodeImageReferencedByManifestList ||
		aws.ToString(out.Failures[0].FailureReason) != "Requested image referenced by manifest list" ||
		aws.ToString(out.Failures[0].ImageId.ImageDigest) != child {
		t.Errorf("deleting a child of an index: %+v, %+v", out.ImageIds, out.Failures)
	}
	if !exists(t, st, pw, "multi@"+child) {
		t.Fatal("the refused delete removed the child")
	}

	// Once the index is gone, its children can go.
	idxDigest, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if out := del(imageID("v1", "")); len(out.Failures) != 0 || len(out.ImageIds) != 1 || aws.ToString(out.ImageIds[0].ImageDigest) != idxDigest.String() {
		t.Fatalf("deleting the index: %+v, %+v", out.ImageIds, out.Failures)
	}
	if out := del(imageID("", child)); len(out.Failures) != 0 || exists(t, st, pw, "multi@"+child) {
		t.Errorf("deleting the child after its index: %+v", out.Failures)
	}
}

// ListImages lists one id per tag, pages through nextToken, and lists images
// no tag names under UNTAGGED.
func TestListImages(t *testing.T) {
	t.Parallel()
	st := startStack(t, fakeecr.Repository{Name: "list"})
	pw := login(t, st.Server)
	c := client(t, st.Server, fakeecr.DefaultAccessKeyID, fakeecr.DefaultRegion)
	a := st.push(t, pw, randomImage(t), "list", "t1", "t2", "t3")
	b := st.push(t, pw, randomImage(t), "list", "t4", "t5")
	loose := randomImage(t)
	ld, err := loose.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(st.ref(t, "list@"+ld.String()), loose, awsAuth(pw)); err != nil {
		t.Fatal(err)
	}

	want := map[string]string{"t1": a.String(), "t2": a.String(), "t3": a.String(), "t4": b.String(), "t5": b.String()}
	if got := tagged(t, c, "list"); len(got) != len(want) || !mapsEqual(got, want) {
		t.Errorf("TAGGED over pages of 2: %v, want %v", got, want)
	}
	for status, want := range map[types.TagStatus]int{types.TagStatusUntagged: 1, types.TagStatusAny: 6} {
		out, err := c.ListImages(t.Context(), &ecr.ListImagesInput{RepositoryName: aws.String("list"), Filter: &types.ListImagesFilter{TagStatus: status}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.ImageIds) != want || out.NextToken != nil {
			t.Errorf("%s: %d ids (next %v), want %d", status, len(out.ImageIds), out.NextToken, want)
		}
		if status == types.TagStatusUntagged && (aws.ToString(out.ImageIds[0].ImageDigest) != ld.String() || out.ImageIds[0].ImageTag != nil) {
			t.Errorf("UNTAGGED: %+v, want only %s", out.ImageIds[0], ld)
		}
	}
	var invalid *types.InvalidParameterException
	if _, err := c.ListImages(t.Context(), &ecr.ListImagesInput{RepositoryName: aws.String("list"), MaxResults: aws.Int32(1001)}); !errors.As(err, &invalid) {
		t.Errorf("maxResults 1001: %v, want InvalidParameterException", err)
	}
}

func mapsEqual(a, b map[string]string) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return len(a) == len(b)
}

// DescribeImages reports the push time ECR keeps from an image's first push
// (putting the same manifest again, under any tag, leaves it) and the last
// recorded pull.
func TestDescribeImagesPushAndPullTimes(t *testing.T) {
	t.Parallel()
	st := startStack(t, fakeecr.Repository{Name: "ages"})
	pw := login(t, st.Server)
	c := client(t, st.Server, fakeecr.DefaultAccessKeyID, fakeecr.DefaultRegion)
	describe := func(tag string) types.ImageDetail {
		t.Helper()
		out, err := c.DescribeImages(t.Context(), &ecr.DescribeImagesInput{RepositoryName: aws.String("ages"), ImageIds: []types.ImageIdentifier{imageID(tag, "")}})
		if err != nil {
			t.Fatalf("DescribeImages %s: %v", tag, err)
		}
		if len(out.ImageDetails) != 1 {
			t.Fatalf("DescribeImages %s: %d details", tag, len(out.ImageDetails))
		}
		return out.ImageDetails[0]
	}

	before := time.Now().Add(-time.Second) // the wire has millisecond precision
	img := randomImage(t)
	d := st.push(t, pw, img, "ages", "x")
	det := describe("x")
	pushed := aws.ToTime(det.ImagePushedAt)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if pushed.Before(before) || pushed.After(time.Now()) || aws.ToString(det.ImageDigest) != d.String() ||
		!slices.Equal(det.ImageTags, []string{"x"}) || det.LastRecordedPullTime != nil ||
		aws.ToString(det.ArtifactMediaType) != string(m.Config.MediaType) || aws.ToInt64(det.ImageSizeInBytes) != m.Layers[0].Size+m.Layers[1].Size {
		t.Errorf("fresh image: %+v", det)
	}

	st.AgeImages(10 * 24 * time.Hour)
	st.push(t, pw, img, "ages", "y") // the same manifest again
	again := describe("y")
	if !aws.ToTime(again.ImagePushedAt).Equal(pushed.Add(-10*24*time.Hour)) || !slices.Equal(again.ImageTags, []string{"x", "y"}) {
		t.Errorf("after putting the same manifest again: pushed %v (want %v), tags %q", aws.ToTime(again.ImagePushedAt), pushed.Add(-10*24*time.Hour), again.ImageTags)
	}

	if _, err := remote.Get(st.ref(t, "ages:x"), awsAuth(pw)); err != nil {
		t.Fatal(err)
	}
	if pulled := aws.ToTime(describe("x").LastRecordedPullTime); pulled.Before(before) {
		t.Errorf("lastRecordedPullTime %v after a pull", pulled)
	}

	// A changed manifest is a new image, pushed now.
	changed := mutate.Annotations(img, map[string]string{"refreshed": "yes"}).(v1.Image)
	st.push(t, pw, changed, "ages", "x")
	if fresh := describe("x"); aws.ToTime(fresh.ImagePushedAt).Before(before) || !slices.Equal(fresh.ImageTags, []string{"x"}) {
		t.Errorf("changed manifest: pushed %v, tags %q", aws.ToTime(fresh.ImagePushedAt), fresh.ImageTags)
	}
	if old := describe("y"); !slices.Equal(old.ImageTags, []string{"y"}) {
		t.Errorf("the old image's tags: %q", old.ImageTags)
	}

	_, err = c.DescribeImages(t.Context(), &ecr.DescribeImagesInput{RepositoryName: aws.String("ages"), ImageIds: []types.ImageIdentifier{imageID("gone", "")}})
	var notFound *types.ImageNotFoundException
	if !errors.As(err, &notFound) || !strings.Contains(notFound.ErrorMessage(), "The image with imageId {imageDigest:'null', imageTag:'gone'} does not exist within the repository with name 'ages'") {
		t.Errorf("unknown tag: %v", err)
	}
}

func TestDeniedImageOperations(t *testing.T) {
	t.Parallel()
	s := start(t, fakeecr.Config{DenyDelete: true, DenyDescribeImages: true, Repositories: []fakeecr.Repository{{Name: "app"}}})
	c := client(t, s, fakeecr.DefaultAccessKeyID, fakeecr.DefaultRegion)
	_, delErr := c.BatchDeleteImage(t.Context(), &ecr.BatchDeleteImageInput{RepositoryName: aws.String("app"), ImageIds: []types.ImageIdentifier{imageID("x", "")}})
	_, descErr := c.DescribeImages(t.Context(), &ecr.DescribeImagesInput{RepositoryName: aws.String("app")})
	for action, err := range map[string]error{"ecr:BatchDeleteImage": delErr, "ecr:DescribeImages": descErr} {
		var api smithy.APIError
		if !errors.As(err, &api) || api.ErrorCode() != "AccessDeniedException" || !strings.Contains(api.ErrorMessage(), action) {
			t.Errorf("%s: %v, want AccessDeniedException naming it", action, err)
		}
	}
}
