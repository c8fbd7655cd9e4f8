package cacheref

import (
	"cmp"
	"fmt"
	"strings"
)

// verdict is the policy outcome for an event, before the export mode applies.
type verdict struct {
	reads     []Key  // imports in priority order; zero-named keys are dropped later
	own       Key    // the key this run writes or would write; zero when none
	write     bool   // whether ExportAuto exports own
	why       string // why not, for the user, when !write
	untrusted bool
	merged    []int // pull requests whose caches reads holds as merged by this run
	claim     Claim // what own rests on, when the payload alone cannot prove it
}

const neverWrites = ": untrusted code never writes the cache"

// verdictFor applies the package doc's table. plErr is why the payload could
// not be read (pl is then zero): events that need it for trust fail closed.
func verdictFor(ev Event, pl payload, plErr error, def Key) verdict {
	switch ev.Name {
	case "push", "schedule", "workflow_dispatch":
		return byRef(ev.Ref, def)
	case "release":
		if strings.HasPrefix(ev.Ref, "refs/tags/") {
			return byRef(ev.Ref, def)
		}
	case "merge_group":
		return mergeGroup(ev, pl, def)
	case "pull_request", "pull_request_review", "pull_request_review_comment", "pull_request_target":
		return pullRequest(ev, pl, plErr, def)
	case "workflow_run":
		return workflowRun(pl, plErr, def)
	case "check_run", "check_suite":
		return checkSuiteRun(ev, pl, plErr, def)
	case "status":
		return status(pl, plErr, def)
	case "issue_comment":
		if plErr != nil {
			return verdict{reads: []Key{def}, untrusted: true,
				why: "the issue_comment payload cannot be read, so the comment may be on a pull request" + neverWrites}
		}
		if pl.Issue != nil && pl.Issue.PullRequest != nil {
			return verdict{reads: []Key{def}, own: prKey(pl.Issue.Number), untrusted: true,
				why: "issue_comment on a pull request: the workflow may build the pull request's code" + neverWrites}
		}
	}
	return otherEvent(ev, pl, plErr, def)
}

// byRef keys a trusted run on the ref it builds.
func byRef(ref string, def Key) verdict {
	if branch := branchOf(ref); branch != "" {
		own := BranchKey(branch)
		return verdict{reads: []Key{own, def}, own: own, write: true}
	}
	if tag, ok := strings.CutPrefix(ref, "refs/tags/"); ok && tag != "" {
		return verdict{reads: []Key{def}, own: TagKey(tag),
			why: "a tag build reuses the default branch's cache (set cache-export: true to write one for the tag)"}
	}
	return verdict{reads: []Key{def}, why: "the event names no branch or tag to key a cache on"}
}

func mergeGroup(ev Event, pl payload, def Key) verdict {
	v := verdict{
		reads: []Key{BranchKey(cmp.Or(branchOf(pl.MergeGroup.BaseRef), ev.BaseRef)), def},
		why:   "a merge queue branch is temporary: its build reuses the base branch's cache (set cache-export: true to write one anyway)",
	}
	if head := branchOf(cmp.Or(pl.MergeGroup.HeadRef, ev.Ref)); head != "" {
		v.own = BranchKey(head)
	}
	return v
}

// pullRequest decides pull_request, pull_request_target and the review
// events, whose payloads all carry the pull request.
func pullRequest(ev Event, pl payload, plErr error, def Key) verdict {
	pr := pl.PullRequest
	if pr == nil {
		pr = &pullRequestPayload{}
	}
	own := prKey(cmp.Or(pl.Number, pr.Number, prNumberOf(ev.Ref)))
	base := BranchKey(cmp.Or(ev.BaseRef, pr.Base.Ref))

	var why string
	switch {
	case ev.Name == "pull_request_target":
		// It runs the base repository's workflow with its credentials, and is
		// typically used to build the pull request's code: a same-repository
		// head proves nothing about what gets built.
		why = "pull_request_target builds on behalf of a pull request" + neverWrites
	case plErr != nil:
		why = "the " + ev.Name + " payload cannot be read, so the pull request is treated as coming from a fork" + neverWrites
	default:
		why = forkReason("pull request", pr.Head.Repo, pr.Base.Repo, pl.Repository)
	}
	if why != "" {
		return verdict{reads: []Key{base, def}, own: own, why: why, untrusted: true}
	}
	head := BranchKey(cmp.Or(ev.HeadRef, pr.Head.Ref))
	v := verdict{reads: []Key{own, head, base, def}, own: own, write: true}
	if own.IsZero() {
		v.why = fmt.Sprintf("no pull request number in the payload or in GITHUB_REF %q", ev.Ref)
	}
	return v
}

// workflowRun keys a run on the code the triggering run built
// (workflow_run.head_branch), not on GITHUB_REF, which is the default branch.
func workflowRun(pl payload, plErr error, def Key) verdict {
	wr := pl.WorkflowRun
	if plErr != nil || wr == nil {
		return verdict{reads: []Key{def}, untrusted: true,
			why: "the workflow_run payload cannot be read or has no workflow_run, so what the triggering run built is unknown" + neverWrites}
	}
	reads := []Key{def}
	var own Key
	if len(wr.PullRequests) > 0 {
		own = prKey(wr.PullRequests[0].Number)
		reads = []Key{BranchKey(wr.PullRequests[0].Base.Ref), def}
	}
	untrusted := func(why string) verdict {
		return verdict{reads: reads, own: own, why: why, untrusted: true}
	}
	if why := forkReason("workflow_run", wr.HeadRepository, wr.Repository, pl.Repository); why != "" {
		return untrusted(why)
	}
	for _, pr := range wr.PullRequests {
		if why := forkReason("pull request", pr.Head.Repo, pr.Base.Repo); why != "" {
			return untrusted("workflow_run for a " + why)
		}
	}
	switch wr.Event {
	case "pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment":
		return untrusted("workflow_run triggered by " + wr.Event + ": it may build the pull request's code" + neverWrites)
	case "issue_comment", "workflow_run":
		// A comment may be on a pull request, and a chain of workflow_runs
		// hides where it started: neither proves what was built.
		return untrusted("workflow_run triggered by " + wr.Event + ": what it built cannot be traced to this repository's branches" + neverWrites)
	case "":
		return untrusted("the workflow_run payload names no triggering event" + neverWrites)
	}

	if wr.HeadBranch == "" {
		return verdict{reads: []Key{def}, why: "the workflow_run names no head branch to key a cache on"}
	}
	own = BranchKey(wr.HeadBranch)
	// After a tag push head_branch is the bare tag name and event is still
	// push: only a check of the branch proves which one this is.
	v := verdict{reads: []Key{own, def}, own: own, claim: Claim{What: "workflow_run.head_branch", Branch: wr.HeadBranch, SHA: wr.HeadSHA}}
	switch wr.Event {
	case "push", "schedule", "workflow_dispatch":
		v.write = true
	default:
		v.why = fmt.Sprintf("workflow_run triggered by %q only reads the cache (set cache-export: true to write one)", wr.Event)
	}
	return v
}

// checkSuiteRun decides check_run and check_suite: GITHUB_REF is the default
// branch whatever the suite checks, so the key comes from the suite's
// head_branch, which GitHub leaves null for a fork's commit.
func checkSuiteRun(ev Event, pl payload, plErr error, def Key) verdict {
	suite := pl.CheckSuite
	if pl.CheckRun != nil {
		suite = pl.CheckRun.CheckSuite
	}
	field := ev.Name + ".head_branch"
	if ev.Name == "check_run" {
		field = "check_run.check_suite.head_branch"
	}
	switch {
	case plErr != nil || suite == nil:
		return verdict{reads: []Key{def}, untrusted: true,
			why: fmt.Sprintf("the %s payload cannot be read or has no check suite, so the commit cannot be traced to a branch of this repository", ev.Name) + neverWrites}
	case pl.showsFork():
		return verdict{reads: []Key{def}, untrusted: true, why: fmt.Sprintf("the %s payload shows a fork", ev.Name) + neverWrites}
	case suite.HeadBranch == "":
		return verdict{reads: []Key{def}, untrusted: true,
			why: fmt.Sprintf("%s is null, as GitHub sends it for a fork's commit: the commit cannot be traced to a branch of this repository", field) + neverWrites}
	}
	own := BranchKey(suite.HeadBranch)
	return verdict{reads: []Key{own, def}, own: own, claim: Claim{What: field, Branch: suite.HeadBranch, SHA: suite.HeadSHA},
		why: fmt.Sprintf("the %s event only reads the cache (set cache-export: true to write one)", ev.Name)}
}

// status keys a status event on the branch of this repository whose head is
// the commit: its branches list them, and is empty for a fork's commit.
func status(pl payload, plErr error, def Key) verdict {
	switch {
	case plErr != nil:
		return verdict{reads: []Key{def}, untrusted: true,
			why: "the status payload cannot be read, so the commit cannot be traced to a branch of this repository" + neverWrites}
	case len(pl.Branches) == 0:
		return verdict{reads: []Key{def}, untrusted: true,
			why: "the status payload lists no branch of this repository holding the commit, as for a fork's commit" + neverWrites}
	}
	for _, b := range pl.Branches {
		if b.Name != "" && pl.SHA != "" && b.Commit.SHA == pl.SHA {
			own := BranchKey(b.Name)
			return verdict{reads: []Key{own, def}, own: own, why: "the status event only reads the cache (set cache-export: true to write one)"}
		}
	}
	return verdict{reads: []Key{def}, why: "the status commit is on a branch of this repository but at the head of none, so there is no key to write"}
}

// otherEvent is every event the table does not name: it reads, and writes
// only with cache-export: true, unless the payload shows a fork.
func otherEvent(ev Event, pl payload, plErr error, def Key) verdict {
	name := cmp.Or(ev.Name, "(unnamed)")
	switch {
	case plErr != nil:
		return verdict{reads: []Key{def}, untrusted: true,
			why: fmt.Sprintf("the %s payload cannot be read, so it cannot be shown not to come from a fork", name) + neverWrites}
	case pl.showsFork():
		return verdict{reads: []Key{def}, untrusted: true,
			why: fmt.Sprintf("the %s payload shows a fork", name) + neverWrites}
	}
	v := byRef(ev.Ref, def)
	v.write = false
	if !v.own.IsZero() {
		v.why = fmt.Sprintf("the %s event only reads the cache (set cache-export: true to write one)", name)
	}
	return v
}

// branchOf returns B for "refs/heads/B", else "".
func branchOf(ref string) string {
	if branch, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
		return branch
	}
	return ""
}

// prKey is PRKey(n), or the zero key when n is not a pull request number.
func prKey(n int) Key {
	if n <= 0 {
		return Key{}
	}
	return PRKey(n)
}
