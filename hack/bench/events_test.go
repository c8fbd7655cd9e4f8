package main

import (
	"os"
	"slices"
	"testing"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// The post-merge scenario's two events read as the action reads them: the
// pull request's build writes pr-N, and the default branch's push after the
// squash merge imports its own cache, then pr-N.
func TestSetEvent(t *testing.T) {
	for _, tc := range []struct {
		j                 job
		own               cacheref.Key
		firstReads        []cacheref.Key
		merged            []int
		writes, untrusted bool
	}{
		{j: job{branch: "feature/change", event: evPullRequest, pr: servicePR}, own: cacheref.PRKey(servicePR), writes: true,
			firstReads: []cacheref.Key{cacheref.PRKey(servicePR), cacheref.BranchKey("feature/change"), cacheref.BranchKey("main")}},
		{j: job{branch: "main", event: evMerged, pr: servicePR}, own: cacheref.BranchKey("main"), writes: true, merged: []int{servicePR},
			firstReads: []cacheref.Key{cacheref.BranchKey("main"), cacheref.PRKey(servicePR)}},
		{j: job{branch: "main"}, own: cacheref.BranchKey("main"), writes: true, firstReads: []cacheref.Key{cacheref.BranchKey("main")}},
	} {
		r := teststack.NewActionRunIn(t.TempDir(), nil)
		if err := setEvent(r, tc.j); err != nil {
			t.Fatal(err)
		}
		payload, err := os.ReadFile(r.Env["GITHUB_EVENT_PATH"])
		if err != nil {
			t.Fatal(err)
		}
		d, err := cacheref.Decide(cacheref.Event{Name: r.Env["GITHUB_EVENT_NAME"], Ref: r.Env["GITHUB_REF"],
			HeadRef: r.Env["GITHUB_HEAD_REF"], BaseRef: r.Env["GITHUB_BASE_REF"], Payload: payload}, cacheref.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if d.Own != tc.own || d.Writes != tc.writes || d.Untrusted || !slices.Equal(d.Merged, tc.merged) ||
			len(d.Reads) < len(tc.firstReads) || !slices.Equal(d.Reads[:len(tc.firstReads)], tc.firstReads) {
			t.Errorf("event %q: own %v, writes %v, untrusted %v (%s), merged %v, reads %v; want own %v, writes, merged %v, reads starting %v",
				tc.j.event, d.Own, d.Writes, d.Untrusted, d.Reason, d.Merged, d.Reads, tc.own, tc.merged, tc.firstReads)
		}
	}
	if err := setEvent(teststack.NewActionRunIn(t.TempDir(), nil), job{event: "release"}); err == nil {
		t.Error(`event "release": no error`)
	}
}
