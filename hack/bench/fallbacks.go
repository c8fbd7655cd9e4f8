package main

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// The action's cache-export outcomes and fallbacks (its cache-export and
// fallbacks outputs) in the report's order; a name the action reports that is
// not listed here is counted under its own name after these.
var (
	exportOutcomes = []string{"none", "exported", "kept", "tagged", "failed", "timed-out"}
	fallbackNames  = []string{"export-solve", "image-retry", "image-after-timeout", "without-cache"}
)

// fallbackRow counts one fixture, scenario and tool's action runs.
type fallbackRow struct {
	key
	at      time.Time // when its first build started
	runs    int
	exports map[string]int // outcome -> runs
	fired   map[string]int // fallback -> runs in which it fired
}

// fallbackRows counts the action runs of every key in sets, in the order the
// keys first ran.
func fallbackRows(sets ...map[key][]sample) []fallbackRow {
	var rows []fallbackRow
	for _, set := range sets {
		for k, ss := range set {
			row := fallbackRow{key: k, exports: map[string]int{}, fired: map[string]int{}}
			for i, s := range ss {
				if i == 0 || s.at.Before(row.at) {
					row.at = s.at
				}
				for _, run := range s.actionRuns {
					row.runs++
					row.exports[run.cacheExport]++
					for _, f := range slices.Compact(slices.Sorted(slices.Values(run.fallbacks))) {
						row.fired[f]++
					}
				}
			}
			if row.runs > 0 {
				rows = append(rows, row)
			}
		}
	}
	slices.SortFunc(rows, func(a, b fallbackRow) int {
		return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.fixture, b.fixture), cmp.Compare(a.scenario, b.scenario), cmp.Compare(a.tool, b.tool))
	})
	return rows
}

// ordered are the names counted in m: known's first, in its order (all of
// them with zeros), then any other, sorted.
func ordered(m map[string]int, known []string, withZeros bool) []string {
	var out []string
	for _, n := range known {
		if withZeros || m[n] > 0 {
			out = append(out, n)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(known, n) {
			out = append(out, n)
		}
	}
	return out
}

// counts shows names with their counts: "exported 3, kept 3"; with of > 0 as
// runs out of of: "export-solve 0/3".
func counts(m map[string]int, names []string, of int) string {
	var parts []string
	for _, n := range names {
		if of > 0 {
			parts = append(parts, fmt.Sprintf("%s %d/%d", n, m[n], of))
		} else {
			parts = append(parts, fmt.Sprintf("%s %d", n, m[n]))
		}
	}
	return strings.Join(parts, ", ")
}

// renderFallbacks is the fallbacks section: per fixture, scenario and action
// tool, the runs, their cache-export outcomes and the runs in which each
// fallback fired; then the totals over every action run of the benchmark.
func renderFallbacks(b *strings.Builder, rows []fallbackRow) {
	if len(rows) == 0 {
		return
	}
	b.WriteString("== fallbacks: per action run, its cache-export output and the fallbacks it reported (fallbacks output); " +
		"x/N: runs in which a fallback fired, of N; rows in the order they first ran\n")
	fmt.Fprintf(b, "%-14s %-20s %-13s %4s  %s\n", "fixture", "scenario", "tool", "runs", "cache-export; fallbacks fired")
	exports, fired, runs := map[string]int{}, map[string]int{}, 0
	for _, r := range rows {
		runs += r.runs
		for n, c := range r.exports {
			exports[n] += c
		}
		for n, c := range r.fired {
			fired[n] += c
		}
		fmt.Fprintf(b, "%-14s %-20s %-13s %4d  %s; %s\n", r.fixture, r.scenario, r.tool, r.runs,
			counts(r.exports, ordered(r.exports, exportOutcomes, false), 0), counts(r.fired, ordered(r.fired, fallbackNames, true), r.runs))
	}
	fmt.Fprintf(b, "fallbacks across %d action runs: %s\n", runs, counts(fired, ordered(fired, fallbackNames, true), 0))
	fmt.Fprintf(b, "cache-export across %d action runs: %s\n\n", runs, counts(exports, ordered(exports, exportOutcomes, false), 0))
}
