package cacheref

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// payload is the part of a webhook payload (GITHUB_EVENT_PATH) the policy
// reads. Fields missing from the JSON stay zero; raw keeps the whole payload
// for the fork search of events the policy does not know.
type payload struct {
	Number      int                 `json:"number"`
	Repository  *repository         `json:"repository"`
	PullRequest *pullRequestPayload `json:"pull_request"`
	MergeGroup  struct {
		BaseRef    string `json:"base_ref"` // refs/heads/<base>
		HeadRef    string `json:"head_ref"` // refs/heads/gh-readonly-queue/<base>/pr-<N>-<sha>
		HeadCommit commit `json:"head_commit"`
	} `json:"merge_group"`
	HeadCommit  commit `json:"head_commit"` // push; null for a deleted branch
	WorkflowRun *struct {
		Event          string               `json:"event"`       // the event that triggered the run that completed
		HeadBranch     string               `json:"head_branch"` // the branch it ran on (a fork's branch for a fork pull request), or the bare tag name after a tag push
		HeadSHA        string               `json:"head_sha"`
		HeadRepository *repository          `json:"head_repository"`
		Repository     *repository          `json:"repository"`
		PullRequests   []pullRequestPayload `json:"pull_requests"` // empty for fork pull requests
	} `json:"workflow_run"`
	CheckSuite *checkSuite `json:"check_suite"`
	CheckRun   *struct {
		CheckSuite *checkSuite `json:"check_suite"`
	} `json:"check_run"`
	// SHA and Branches are a status event's: the branches of this repository
	// that contain the commit (at most 10), empty for a fork's commit.
	SHA      string `json:"sha"`
	Branches []struct {
		Name   string `json:"name"`
		Commit struct {
			SHA string `json:"sha"`
		} `json:"commit"`
	} `json:"branches"`
	Issue *struct {
		Number      int       `json:"number"`
		PullRequest *struct{} `json:"pull_request"` // present when the issue is a pull request
	} `json:"issue"`

	raw any
}

type commit struct {
	ID      string `json:"id"`
	Message string `json:"message"`
}

// checkSuite is a check_suite (also inside a check_run). GitHub sends a fork's
// with head_branch null and pull_requests empty; after a tag push, head_branch
// is the bare tag name.
type checkSuite struct {
	HeadBranch string `json:"head_branch"`
	HeadSHA    string `json:"head_sha"`
}

type repository struct {
	ID            int64  `json:"id"`
	DefaultBranch string `json:"default_branch"`
}

type pullRequestPayload struct {
	Number int `json:"number"`
	Head   struct {
		Ref  string      `json:"ref"`
		Repo *repository `json:"repo"` // null when the fork was deleted
	} `json:"head"`
	Base struct {
		Ref  string      `json:"ref"`
		Repo *repository `json:"repo"`
	} `json:"base"`
}

// parsePayload decodes the event payload. The error completes the sentence
// "the event payload ...".
func parsePayload(b []byte) (payload, error) {
	var pl payload
	if len(bytes.TrimSpace(b)) == 0 {
		return pl, errors.New("is empty")
	}
	if err := json.Unmarshal(b, &pl.raw); err != nil {
		return payload{}, fmt.Errorf("is not JSON: %w", err)
	}
	if err := json.Unmarshal(b, &pl); err != nil {
		return payload{}, fmt.Errorf("is not shaped like a GitHub event: %w", err)
	}
	return pl, nil
}

func (pl payload) defaultBranch() string {
	if pl.Repository == nil {
		return ""
	}
	return pl.Repository.DefaultBranch
}

// prNumberOf is N from refs/pull/N/merge (or /head), else 0.
func prNumberOf(ref string) int {
	rest, ok := strings.CutPrefix(ref, "refs/pull/")
	if !ok {
		return 0
	}
	num, _, _ := strings.Cut(rest, "/")
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

// forkReason says why head, the head repository of what (a pull request or a
// workflow run), is untrusted, or "" when it is provably the repository the workflow runs in:
// its id equals every base id the payload gives, and at least one is given.
// Ids, not names: a fork can be renamed to anything. Anything the payload
// leaves open counts as a fork: a missing field must not open the cache to
// writes.
func forkReason(what string, head *repository, bases ...*repository) string {
	if head == nil {
		return what + " from a deleted fork or with no head repository in the payload" + neverWrites
	}
	known := false
	for _, base := range bases {
		if base == nil || base.ID == 0 {
			continue
		}
		if head.ID != base.ID {
			return what + " from a fork" + neverWrites
		}
		known = true
	}
	if !known || head.ID == 0 {
		return what + ": the payload does not give both repository ids, so it is treated as a fork" + neverWrites
	}
	return ""
}

// showsFork reports whether anything in the payload looks like a pull request
// or a run from another repository: an object with head.repo and base.repo
// of different ids (or a null head.repo), or a head_repository that is not
// the payload's repository. It lets events GitHub adds later, and the
// pull_requests lists of check_run and check_suite, fail closed.
func (pl payload) showsFork() bool {
	var repoID float64 // JSON numbers decode as float64, exact for GitHub's ids
	if pl.Repository != nil {
		repoID = float64(pl.Repository.ID)
	}
	return findFork(pl.raw, repoID)
}

func findFork(v any, repoID float64) bool {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			if findFork(e, repoID) {
				return true
			}
		}
	case map[string]any:
		head, _ := v["head"].(map[string]any)
		base, _ := v["base"].(map[string]any)
		if headRepo, ok := head["repo"]; ok && base != nil && !sameID(headRepo, idOf(base["repo"])) {
			return true
		}
		if headRepo, ok := v["head_repository"]; ok && !sameID(headRepo, repoID) {
			return true
		}
		for _, e := range v {
			if findFork(e, repoID) {
				return true
			}
		}
	}
	return false
}

// idOf is a decoded repository object's id, or 0.
func idOf(repo any) float64 {
	m, _ := repo.(map[string]any)
	id, _ := m["id"].(float64)
	return id
}

// sameID reports whether repo is a repository object with id want (nonzero).
func sameID(repo any, want float64) bool {
	id := idOf(repo)
	return id != 0 && id == want
}
