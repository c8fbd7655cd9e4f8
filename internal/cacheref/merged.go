package cacheref

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// maxMerged bounds the merged pull requests' caches one run imports: each is
// probed before the build.
const maxMerged = 3

var (
	// GitHub's squash merge ends the first line with "(#N)"; its merge commit
	// starts "Merge pull request #N from owner/branch".
	squashRE = regexp.MustCompile(`\(#([0-9]+)\)\s*$`)
	mergeRE  = regexp.MustCompile(`^Merge pull request #([0-9]+) from `)
	// A commit id (SHA-1 or SHA-256): anything else in the payload is not
	// put in an API path or the log.
	commitRE = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)
	// A merge queue's branch is gh-readonly-queue/<base>/pr-<N>-<sha>.
	queueRE = regexp.MustCompile(`^gh-readonly-queue/.+/pr-([0-9]+)-[0-9a-f]{40}$`)
)

// mergedByMessage is the pull request a commit message says it merged, or 0.
func mergedByMessage(message string) int {
	first, _, _ := strings.Cut(message, "\n")
	for _, re := range []*regexp.Regexp{squashRE, mergeRE} {
		if m := re.FindStringSubmatch(strings.TrimSpace(first)); m != nil {
			if n, err := strconv.Atoi(m[1]); err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

// merged lists the pull requests this push or merge group merged, as the
// payload tells: the queue branch's, and the head commit's message (the commit
// GitHub's squash or merge makes). The other pushed commits' messages are not
// read: in a rebase merge their author wrote them. The head commit's message
// too is its author's after a rebase merge or a push of a branch's commits,
// so a number there is a claim nothing checked; but only a same-repository
// pull request's own run writes its pr-N cache, and a fork's never does, so a
// number names a cache this repository's trusted runs wrote or none at all.
func merged(pl payload, queueBranch string) []int {
	var nums []int
	add := func(n int) {
		if n > 0 && !slices.Contains(nums, n) {
			nums = append(nums, n)
		}
	}
	if m := queueRE.FindStringSubmatch(queueBranch); m != nil {
		n, _ := strconv.Atoi(m[1])
		add(n)
	}
	add(mergedByMessage(pl.HeadCommit.Message))
	add(mergedByMessage(pl.MergeGroup.HeadCommit.Message))
	if len(nums) > maxMerged {
		nums = nums[:maxMerged]
	}
	return nums
}

// withMerged inserts the merged pull requests' keys after the run's own key,
// before its fallbacks: their builds ran the steps this build needs.
func withMerged(v verdict, nums []int) verdict {
	if len(nums) == 0 || v.untrusted {
		return v
	}
	v.reads = insertMerged(v.reads, nums)
	v.merged = nums
	return v
}

func insertMerged(reads []Key, nums []int) []Key {
	head := min(1, len(reads))
	out := slices.Clone(reads[:head])
	for _, n := range nums {
		out = append(out, PRKey(n))
	}
	return append(out, reads[head:]...)
}

// WithMerged adds the pull requests the GitHub API says MergeCommit merged
// (a rebase merge, whose messages name none) to a decision that asked.
func (d Decision) WithMerged(nums []int) Decision {
	if d.MergeCommit == "" || d.Untrusted {
		return d
	}
	var added []int
	for _, n := range nums {
		if n > 0 && !slices.Contains(d.Merged, n) && !slices.Contains(added, n) && len(d.Merged)+len(added) < maxMerged {
			added = append(added, n)
		}
	}
	var reads []Key
	for _, k := range insertMerged(d.Reads, added) {
		if !slices.Contains(reads, k) {
			reads = append(reads, k)
		}
	}
	d.Reads, d.Merged, d.MergeCommit = reads, append(slices.Clone(d.Merged), added...), ""
	return d
}
