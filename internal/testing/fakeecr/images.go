package fakeecr

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// image is what ECR records about one manifest beyond what the registry
// holds: ECR keeps an image's push date from its first push, and putting the
// same manifest again, under any tag, changes nothing (PutImage answers
// ImageAlreadyExistsException; aws/containers-roadmap#2746).
type image struct {
	pushedAt time.Time
	pulledAt time.Time // zero until a manifest GET
	children []string  // for an index: the manifests it references
}

// recordPush notes a manifest put through the front.
func (s *Server) recordPush(repo string, body []byte) {
	sum := sha256.Sum256(body)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	var idx struct {
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
	}
	_ = json.Unmarshal(body, &idx) // validateManifest has parsed it already
	s.imagesMu.Lock()
	defer s.imagesMu.Unlock()
	if s.images[repo] == nil {
		s.images[repo] = map[string]*image{}
	}
	if _, ok := s.images[repo][digest]; ok {
		return
	}
	im := &image{pushedAt: time.Now()}
	for _, m := range idx.Manifests {
		im.children = append(im.children, m.Digest)
	}
	s.images[repo][digest] = im
}

// recordPull notes a manifest GET; ECR updates lastRecordedPullTime on pulls.
func (s *Server) recordPull(repo, digest string) {
	s.imagesMu.Lock()
	defer s.imagesMu.Unlock()
	if im := s.images[repo][digest]; im != nil {
		im.pulledAt = time.Now()
	}
}

// record returns a copy of what is known about digest in repo; an image that
// did not come through the front counts as pushed when the double started.
func (s *Server) record(repo, digest string) image {
	s.imagesMu.Lock()
	defer s.imagesMu.Unlock()
	if im := s.images[repo][digest]; im != nil {
		return *im
	}
	return image{pushedAt: s.created}
}

func (s *Server) forget(repo, digest string) {
	s.imagesMu.Lock()
	defer s.imagesMu.Unlock()
	delete(s.images[repo], digest)
}

// AgeImages moves every recorded push and pull time d into the past, as if d
// had passed, to test what depends on an image's age.
func (s *Server) AgeImages(d time.Duration) {
	s.imagesMu.Lock()
	defer s.imagesMu.Unlock()
	for _, images := range s.images {
		for _, im := range images {
			im.pushedAt = im.pushedAt.Add(-d)
			if !im.pulledAt.IsZero() {
				im.pulledAt = im.pulledAt.Add(-d)
			}
		}
	}
}

// snapshot is a repository's images as the registry holds them now.
type snapshot struct {
	tags   map[string]string   // tag -> digest
	byTags map[string][]string // digest -> tags, sorted
}

func (s *Server) snapshot(r *http.Request, repo string) (snapshot, *apiError) {
	tags, err := s.upstreamTags(r.Context(), repo)
	if err != nil {
		return snapshot{}, upstreamError(err)
	}
	sn := snapshot{tags: map[string]string{}, byTags: map[string][]string{}}
	for _, t := range tags {
		d, found, err := s.upstreamDigest(r.Context(), repo, t)
		if err != nil {
			return snapshot{}, upstreamError(err)
		}
		if found {
			sn.tags[t] = d
			sn.byTags[d] = append(sn.byTags[d], t)
		}
	}
	for _, ts := range sn.byTags {
		slices.Sort(ts)
	}
	return sn, nil
}

// untagged lists the recorded images no tag names that the registry still holds.
func (s *Server) untagged(r *http.Request, repo string, sn snapshot) ([]string, *apiError) {
	out, err := s.stored(r, repo, func(d string, _ *image) bool { return len(sn.byTags[d]) == 0 })
	if err != nil {
		return nil, upstreamError(err)
	}
	return out, nil
}

// stored lists, sorted, the recorded images of repo that match and that the
// registry still holds; with an error, every one that matches.
func (s *Server) stored(r *http.Request, repo string, match func(digest string, im *image) bool) ([]string, error) {
	s.imagesMu.Lock()
	var candidates []string
	for d, im := range s.images[repo] {
		if match(d, im) {
			candidates = append(candidates, d)
		}
	}
	s.imagesMu.Unlock()
	slices.Sort(candidates)
	var out []string
	for _, d := range candidates {
		_, found, err := s.upstreamDigest(r.Context(), repo, d)
		if err != nil {
			return candidates, err
		}
		if found {
			out = append(out, d)
		}
	}
	return out, nil
}

func upstreamError(err error) *apiError {
	return &apiError{http.StatusInternalServerError, "ServerException", err.Error()}
}

type imageIDJSON struct {
	ImageDigest string `json:"imageDigest,omitempty"`
	ImageTag    string `json:"imageTag,omitempty"`
}

type imageFailureJSON struct {
	ImageID       imageIDJSON `json:"imageId"`
	FailureCode   string      `json:"failureCode"`
	FailureReason string      `json:"failureReason"`
}

// repoRequest is the part every image operation's request shares.
type repoRequest struct {
	RegistryID     string `json:"registryId"`
	RepositoryName string `json:"repositoryName"`
	Filter         *struct {
		TagStatus string `json:"tagStatus"`
	} `json:"filter"`
	ImageIDs   []imageIDJSON `json:"imageIds"`
	MaxResults *int          `json:"maxResults"`
	NextToken  string        `json:"nextToken"`
}

// parseRepoRequest decodes body and checks the repository exists.
func (s *Server) parseRepoRequest(body []byte) (repoRequest, *apiError) {
	var in repoRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return in, &apiError{status: http.StatusBadRequest, code: "SerializationException", message: err.Error()}
	}
	registryID := in.RegistryID
	if registryID == "" {
		registryID = s.cfg.AccountID
	}
	if _, ok := s.repos[in.RepositoryName]; !ok || registryID != s.cfg.AccountID {
		return in, &apiError{http.StatusBadRequest, "RepositoryNotFoundException", fmt.Sprintf(
			"The repository with name '%s' does not exist in the registry with id '%s'", in.RepositoryName, registryID)}
	}
	return in, nil
}

// page cuts n items into the page nextToken starts and maxResults (1 to
// 1000, default 100) bounds, and returns the token of the next page.
func page(n int, in repoRequest) (from, to int, next string, err *apiError) {
	size := 100
	if in.MaxResults != nil {
		size = *in.MaxResults
		if size < 1 || size > 1000 {
			return 0, 0, "", &apiError{http.StatusBadRequest, "InvalidParameterException",
				"Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value between 1 and 1000'"}
		}
	}
	if in.NextToken != "" {
		b, derr := base64.RawURLEncoding.DecodeString(in.NextToken)
		i, aerr := strconv.Atoi(string(b))
		if derr != nil || aerr != nil || i < 0 || i > n {
			return 0, 0, "", &apiError{http.StatusBadRequest, "InvalidParameterException", "Invalid parameter at 'nextToken'"}
		}
		from = i
	}
	to = min(n, from+size)
	if to < n {
		next = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(to)))
	}
	return from, to, next, nil
}

// tagStatus checks a filter's tagStatus (TAGGED, UNTAGGED or ANY, the default).
func tagStatus(in repoRequest) (string, *apiError) {
	if in.Filter == nil || in.Filter.TagStatus == "" {
		return "ANY", nil
	}
	switch in.Filter.TagStatus {
	case "TAGGED", "UNTAGGED", "ANY":
		return in.Filter.TagStatus, nil
	}
	return "", &apiError{http.StatusBadRequest, "InvalidParameterException", fmt.Sprintf(
		"Invalid parameter at 'filter.tagStatus' failed to satisfy constraint: 'Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]', got '%s'", in.Filter.TagStatus)}
}

// listImages lists one image id per tag (and one per untagged image), as ECR does.
func (s *Server) listImages(w http.ResponseWriter, r *http.Request, body []byte) *apiError {
	in, aerr := s.parseRepoRequest(body)
	if aerr != nil {
		return aerr
	}
	status, aerr := tagStatus(in)
	if aerr != nil {
		return aerr
	}
	sn, aerr := s.snapshot(r, in.RepositoryName)
	if aerr != nil {
		return aerr
	}
	ids := []imageIDJSON{}
	if status != "UNTAGGED" {
		for _, t := range slices.Sorted(maps.Keys(sn.tags)) {
			ids = append(ids, imageIDJSON{ImageDigest: sn.tags[t], ImageTag: t})
		}
	}
	if status != "TAGGED" {
		untagged, aerr := s.untagged(r, in.RepositoryName, sn)
		if aerr != nil {
			return aerr
		}
		for _, d := range untagged {
			ids = append(ids, imageIDJSON{ImageDigest: d})
		}
	}
	from, to, next, aerr := page(len(ids), in)
	if aerr != nil {
		return aerr
	}
	out := map[string]any{"imageIds": ids[from:to]}
	if next != "" {
		out["nextToken"] = next
	}
	writeAPIJSON(w, http.StatusOK, out)
	return nil
}

type imageDetailJSON struct {
	RegistryID             string      `json:"registryId"`
	RepositoryName         string      `json:"repositoryName"`
	ImageDigest            string      `json:"imageDigest"`
	ImageTags              []string    `json:"imageTags,omitempty"`
	ImageSizeInBytes       int64       `json:"imageSizeInBytes"`
	ImagePushedAt          json.Number `json:"imagePushedAt"`
	ImageManifestMediaType string      `json:"imageManifestMediaType,omitempty"`
	ArtifactMediaType      string      `json:"artifactMediaType,omitempty"`
	LastRecordedPullTime   json.Number `json:"lastRecordedPullTime,omitempty"`
	ImageStatus            string      `json:"imageStatus"`
}

// describeImages describes the images imageIds name, else every image the
// filter selects, one entry per image with all of its tags.
func (s *Server) describeImages(w http.ResponseWriter, r *http.Request, body []byte) *apiError {
	in, aerr := s.parseRepoRequest(body)
	if aerr != nil {
		return aerr
	}
	if s.cfg.DenyDescribeImages {
		return s.accessDenied("ecr:DescribeImages", s.repositoryArn(in.RepositoryName))
	}
	status, aerr := tagStatus(in)
	if aerr != nil {
		return aerr
	}
	if len(in.ImageIDs) > 0 && (in.MaxResults != nil || in.NextToken != "" || in.Filter != nil) {
		return &apiError{http.StatusBadRequest, "InvalidParameterException",
			"Invalid parameter: imageIds cannot be combined with maxResults, nextToken or filter"}
	}
	sn, aerr := s.snapshot(r, in.RepositoryName)
	if aerr != nil {
		return aerr
	}
	var digests []string
	if len(in.ImageIDs) > 0 {
		for _, id := range in.ImageIDs {
			d, ok, aerr := s.resolve(r, in.RepositoryName, sn, id)
			if aerr != nil {
				return aerr
			}
			if !ok {
				return &apiError{http.StatusBadRequest, "ImageNotFoundException", fmt.Sprintf(
					"The image with imageId {imageDigest:'%s', imageTag:'%s'} does not exist within the repository with name '%s' in the registry with id '%s'",
					nullable(id.ImageDigest), nullable(id.ImageTag), in.RepositoryName, s.cfg.AccountID)}
			}
			if !slices.Contains(digests, d) {
				digests = append(digests, d)
			}
		}
	} else {
		if status != "UNTAGGED" {
			digests = slices.Sorted(maps.Keys(sn.byTags))
		}
		if status != "TAGGED" {
			untagged, aerr := s.untagged(r, in.RepositoryName, sn)
			if aerr != nil {
				return aerr
			}
			digests = append(digests, untagged...)
		}
	}
	from, to, next, aerr := page(len(digests), in)
	if aerr != nil {
		return aerr
	}
	details := []imageDetailJSON{}
	for _, d := range digests[from:to] {
		det, aerr := s.imageDetail(r, in.RepositoryName, d, sn.byTags[d])
		if aerr != nil {
			return aerr
		}
		details = append(details, det)
	}
	out := map[string]any{"imageDetails": details}
	if next != "" {
		out["nextToken"] = next
	}
	writeAPIJSON(w, http.StatusOK, out)
	return nil
}

func nullable(s string) string {
	if s == "" {
		return "null"
	}
	return s
}

func (s *Server) imageDetail(r *http.Request, repo, digest string, tags []string) (imageDetailJSON, *apiError) {
	body, mediaType, found, err := s.upstreamManifest(r.Context(), repo, digest)
	if err != nil || !found {
		return imageDetailJSON{}, upstreamError(fmt.Errorf("read %s@%s: found=%v: %v", repo, digest, found, err)) //nolint:errorlint // err is nil when the registry said not found; %w would print %!w(<nil>)
	}
	var m struct {
		Config struct {
			MediaType string `json:"mediaType"`
		} `json:"config"`
		Layers []struct {
			Size int64 `json:"size"`
		} `json:"layers"`
	}
	_ = json.Unmarshal(body, &m) // an index has neither
	rec := s.record(repo, digest)
	d := imageDetailJSON{
		RegistryID:             s.cfg.AccountID,
		RepositoryName:         repo,
		ImageDigest:            digest,
		ImageTags:              tags,
		ImagePushedAt:          epochSeconds(rec.pushedAt),
		ImageManifestMediaType: mediaType,
		ArtifactMediaType:      m.Config.MediaType,
		ImageStatus:            "ACTIVE",
	}
	for _, l := range m.Layers {
		d.ImageSizeInBytes += l.Size
	}
	if !rec.pulledAt.IsZero() {
		d.LastRecordedPullTime = epochSeconds(rec.pulledAt)
	}
	return d, nil
}

// resolve finds the digest an image id names: a tag must name it, a digest
// must exist, and both given must agree.
func (s *Server) resolve(r *http.Request, repo string, sn snapshot, id imageIDJSON) (string, bool, *apiError) {
	if id.ImageTag != "" {
		d, ok := sn.tags[id.ImageTag]
		return d, ok && (id.ImageDigest == "" || id.ImageDigest == d), nil
	}
	_, found, err := s.upstreamDigest(r.Context(), repo, id.ImageDigest)
	if err != nil {
		return "", false, upstreamError(err)
	}
	return id.ImageDigest, found, nil
}

// batchDeleteImage removes tags and images as ECR does: an image id with a
// tag removes that tag, and the image with its last tag; an image id with
// only a digest deletes the image and all its tags. An image an index in the
// repository references cannot be deleted. Each image id that cannot be
// processed is a failure in the response, not an error.
func (s *Server) batchDeleteImage(w http.ResponseWriter, r *http.Request, body []byte) *apiError {
	in, aerr := s.parseRepoRequest(body)
	if aerr != nil {
		return aerr
	}
	if s.cfg.DenyDelete {
		return s.accessDenied("ecr:BatchDeleteImage", s.repositoryArn(in.RepositoryName))
	}
	if len(in.ImageIDs) < 1 || len(in.ImageIDs) > 100 {
		return &apiError{http.StatusBadRequest, "InvalidParameterException",
			"Invalid parameter at 'imageIds' failed to satisfy constraint: 'Member must have length less than or equal to 100 and greater than or equal to 1'"}
	}
	// Deletes and tag puts of the repository take turns.
	s.tagMu.Lock()
	defer s.tagMu.Unlock()
	deleted, failures := []imageIDJSON{}, []imageFailureJSON{}
	fail := func(id imageIDJSON, code, reason string) {
		failures = append(failures, imageFailureJSON{ImageID: id, FailureCode: code, FailureReason: reason})
	}
	sn, aerr := s.snapshot(r, in.RepositoryName)
	if aerr != nil {
		return aerr
	}
	for _, id := range in.ImageIDs {
		if id.ImageDigest == "" && id.ImageTag == "" {
			fail(id, "MissingDigestAndTag", "Invalid request parameters: both tag and digest cannot be null")
			continue
		}
		digest, ok, aerr := s.resolve(r, in.RepositoryName, sn, id)
		switch {
		case aerr != nil:
			return aerr
		case !ok && id.ImageTag != "" && id.ImageDigest != "" && sn.tags[id.ImageTag] != "":
			fail(id, "ImageTagDoesNotMatchDigest", "Invalid request parameters: image tag digest did not match image digest")
			continue
		case !ok:
			fail(id, "ImageNotFound", "Requested image not found")
			continue
		}
		tags := sn.byTags[digest]
		if id.ImageTag != "" && len(tags) > 1 {
			others := slices.DeleteFunc(slices.Clone(tags), func(t string) bool { return t == id.ImageTag })
			if err := s.removeTag(r, in.RepositoryName, id.ImageTag, digest, others); err != nil {
				return upstreamError(err)
			}
			delete(sn.tags, id.ImageTag)
			sn.byTags[digest] = others
			deleted = append(deleted, imageIDJSON{ImageDigest: digest, ImageTag: id.ImageTag})
			continue
		}
		if parents := s.parents(r, in.RepositoryName, digest); len(parents) > 0 {
			fail(id, "ImageReferencedByManifestList", "Requested image referenced by manifest list")
			continue
		}
		if err := s.removeImage(r, in.RepositoryName, digest, tags); err != nil {
			return upstreamError(err)
		}
		for _, t := range tags {
			delete(sn.tags, t)
		}
		delete(sn.byTags, digest)
		if id.ImageTag != "" {
			deleted = append(deleted, imageIDJSON{ImageDigest: digest, ImageTag: id.ImageTag})
		} else {
			for _, t := range tags {
				deleted = append(deleted, imageIDJSON{ImageDigest: digest, ImageTag: t})
			}
			if len(tags) == 0 {
				deleted = append(deleted, imageIDJSON{ImageDigest: digest})
			}
		}
	}
	writeAPIJSON(w, http.StatusOK, map[string]any{"imageIds": deleted, "failures": failures})
	return nil
}

// parents lists the recorded indexes, still in the registry, that reference
// digest; when the registry cannot tell, every recorded one.
func (s *Server) parents(r *http.Request, repo, digest string) []string {
	out, _ := s.stored(r, repo, func(_ string, im *image) bool { return slices.Contains(im.children, digest) })
	return out
}

// removeTag makes tag name nothing, leaving digest under the others.
func (s *Server) removeTag(r *http.Request, repo, tag, digest string, others []string) error {
	ok, err := s.upstreamDelete(r.Context(), repo, tag)
	if err != nil || ok {
		return err
	}
	// Distribution 2.x deletes manifests by digest only, which drops every tag
	// naming it: delete, then put the manifest back under the tags that stay.
	body, mediaType, found, err := s.upstreamManifest(r.Context(), repo, digest)
	if err != nil || !found {
		return fmt.Errorf("untag %s:%s: read %s: found=%v: %v", repo, tag, digest, found, err) //nolint:errorlint // err is nil when the registry said not found; %w would print %!w(<nil>)
	}
	if ok, err := s.upstreamDelete(r.Context(), repo, digest); err != nil || !ok {
		return fmt.Errorf("untag %s:%s: delete %s: %v", repo, tag, digest, err) //nolint:errorlint // err is nil when the registry said not found; %w would print %!w(<nil>)
	}
	for _, t := range others {
		if err := s.upstreamPut(r.Context(), repo, t, mediaType, body); err != nil {
			return fmt.Errorf("untag %s:%s: restore %s: %w", repo, tag, t, err)
		}
	}
	return nil
}

// removeImage deletes digest and every tag naming it.
func (s *Server) removeImage(r *http.Request, repo, digest string, tags []string) error {
	for _, t := range tags {
		// Registries that store tags apart from digests need this; distribution
		// 2.x refuses it and drops the tags with the digest below.
		if _, err := s.upstreamDelete(r.Context(), repo, t); err != nil {
			return err
		}
	}
	if ok, err := s.upstreamDelete(r.Context(), repo, digest); err != nil || !ok {
		return fmt.Errorf("delete %s@%s: %v", repo, digest, err) //nolint:errorlint // err is nil when the registry said not found; %w would print %!w(<nil>)
	}
	s.forget(repo, digest)
	return nil
}
