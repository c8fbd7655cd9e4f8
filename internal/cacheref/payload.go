package cacheref

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// payload is the part of a webhook payload (GITHUB_EVENT_PATH) the policy
// reads. Fields missing from the JSON stay zero.
type payload struct {
	Number     int `json:"number"`
	Repository struct {
		DefaultBranch string `json:"default_branch"`
	} `json:"repository"`
	PullRequest struct {
		Number int      `json:"number"`
		Head   prBranch `json:"head"`
		Base   prBranch `json:"base"`
	} `json:"pull_request"`
	MergeGroup struct {
		BaseRef string `json:"base_ref"` // refs/heads/<base>
		HeadRef string `json:"head_ref"` // refs/heads/gh-readonly-queue/<base>/pr-<N>-<sha>
	} `json:"merge_group"`
}

type prBranch struct {
	Ref  string `json:"ref"`
	Repo *struct {
		FullName string `json:"full_name"`
	} `json:"repo"` // null when the fork was deleted
}

// parsePayload decodes ev.Payload when the policy needs it: pull request and
// merge group events always, other events only for the default branch. An
// empty payload is not an error; a malformed one that is needed is.
func parsePayload(ev Event, needDefaultBranch bool) (payload, error) {
	var pl payload
	need := needDefaultBranch || ev.Name == "pull_request" || ev.Name == "pull_request_target" || ev.Name == "merge_group"
	if !need || len(bytes.TrimSpace(ev.Payload)) == 0 {
		return pl, nil
	}
	if err := json.Unmarshal(ev.Payload, &pl); err != nil {
		return payload{}, fmt.Errorf("read %s event payload: %w", ev.Name, err)
	}
	return pl, nil
}

// prNumber is the payload's number, else N from refs/pull/N/merge (or /head).
func (pl payload) prNumber(ref string) (int, error) {
	if n := cmp.Or(pl.Number, pl.PullRequest.Number); n > 0 {
		return n, nil
	}
	if rest, ok := strings.CutPrefix(ref, "refs/pull/"); ok {
		num, _, _ := strings.Cut(rest, "/")
		if n, err := strconv.Atoi(num); err == nil && n > 0 {
			return n, nil
		}
	}
	return 0, fmt.Errorf("no pull request number in the payload or in GITHUB_REF %q", ref)
}

// forkReason says why a pull_request event is untrusted, or "" when its head
// is provably the base repository. Anything the payload leaves open counts as
// a fork: a missing field must not open the cache to writes.
func (pl payload) forkReason() string {
	head, base := pl.PullRequest.Head.Repo, pl.PullRequest.Base.Repo
	switch {
	case base == nil || base.FullName == "":
		return "the event payload does not name the pull request's base repository, so it is treated as a fork: untrusted code never writes the cache"
	case head == nil:
		return "pull request from a deleted fork: untrusted code never writes the cache"
	case head.FullName != base.FullName:
		return "pull request from a fork: untrusted code never writes the cache"
	}
	return ""
}
