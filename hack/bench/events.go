package main

import (
	"encoding/json"
	"fmt"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// benchRepo is the repository every action run builds for (GITHUB_REPOSITORY
// octo/app), in the fields of GitHub's webhook payloads the action reads.
var benchRepo = map[string]any{"id": 817326519, "name": "app", "full_name": "octo/app", "fork": false, "default_branch": "main"}

// setEvent gives the run its event: a push to j.branch; for evPullRequest a
// pull_request event (action synchronize) of pull request j.pr from
// j.branch in the same repository into main, on refs/pull/N/merge; for
// evMerged a push to main whose head commit is that pull request's squash
// merge. The payloads are trimmed to the fields of GitHub's documented shapes
// ("Webhook events and payloads": pull_request, push) that matter here.
func setEvent(r *teststack.ActionRun, j job) error {
	switch j.event {
	case "":
		return r.SetPush(j.branch, "main")
	case evPullRequest:
		side := func(ref string) map[string]any { return map[string]any{"ref": ref, "repo": benchRepo} }
		payload, err := json.Marshal(map[string]any{
			"action": "synchronize",
			"number": j.pr,
			"pull_request": map[string]any{
				"number": j.pr, "state": "open", "title": "Change a line of the main package",
				"head": side(j.branch), "base": side("main"),
			},
			"repository": benchRepo,
		})
		if err != nil {
			return err
		}
		r.Env["GITHUB_HEAD_REF"], r.Env["GITHUB_BASE_REF"] = j.branch, "main"
		return r.SetEvent("pull_request", fmt.Sprintf("refs/pull/%d/merge", j.pr), string(payload))
	case evMerged:
		msg := fmt.Sprintf("Change a line of the main package (#%d)\n\n* Change a line of the main package", j.pr)
		commit := map[string]any{"id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
			"distinct": true, "message": msg}
		payload, err := json.Marshal(map[string]any{
			"ref": "refs/heads/" + j.branch, "created": false, "deleted": false, "forced": false,
			"repository": benchRepo, "commits": []any{commit}, "head_commit": commit,
		})
		if err != nil {
			return err
		}
		return r.SetEvent("push", "refs/heads/"+j.branch, string(payload))
	}
	return fmt.Errorf("unknown event %q", j.event)
}
