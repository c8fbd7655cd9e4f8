package run

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ecr-build-cache/ecr-build-cache/internal/config"
	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
)

// fakeRefresher dates every image pushedAt and records refreshes.
type fakeRefresher struct {
	pushedAt  time.Time
	err       error
	refreshed []string
}

func (f *fakeRefresher) PushedAt(context.Context, string) (time.Time, error) {
	return f.pushedAt, f.err
}

func (f *fakeRefresher) Refresh(_ context.Context, ref string, _ time.Time) (string, error) {
	f.refreshed = append(f.refreshed, ref)
	return "sha256:new", nil
}

// A cache whose export was skipped or replaced by a tag is put again once ECR
// dates it past cache-refresh-days, and only then.
func TestSkippedExportRefreshesAnOldCache(t *testing.T) {
	t.Parallel()
	own, main := refOf("feature"), refOf("main")
	kept := map[string]registry.Ref{own: warm(t, own, "l1"), main: warm(t, main, "l1")}
	copied := map[string]registry.Ref{main: warm(t, main, "l1")}
	for _, tc := range []struct {
		name      string
		refs      map[string]registry.Ref
		age       time.Duration
		after     time.Duration
		err       error
		refreshed bool
		log       string
	}{
		{"kept, 8 days old", kept, 8 * 24 * time.Hour, 7 * 24 * time.Hour, nil, true, "ECR dated it 8 days old"},
		{"kept, 6 days old", kept, 6 * 24 * time.Hour, 7 * 24 * time.Hour, nil, false, ""},
		{"tagged from main, 30 days old", copied, 30 * 24 * time.Hour, 7 * 24 * time.Hour, nil, true, "ECR dated it 30 days old"},
		{"refreshing off", kept, 300 * 24 * time.Hour, 0, nil, false, ""},
		{"no permission: a warning", kept, 0, 7 * 24 * time.Hour, errors.New("access denied; the role needs ecr:DescribeImages"), false,
			"::warning::could not tell when " + own + " was pushed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeRefresher{pushedAt: time.Now().Add(-tc.age), err: tc.err}
			r, out, _ := testRunner(t, &fakeSolver{cached: []bool{true, true}}, &fakeRegistry{refs: tc.refs}, false)
			r.refresh = f
			r.with(func(c *config.Config) { c.CacheRefreshAfter = tc.after })
			exp := runPhases(t, r)
			if got := len(f.refreshed) == 1 && f.refreshed[0] == own; got != tc.refreshed {
				t.Errorf("refreshed %q, want a refresh of %s: %v", f.refreshed, own, tc.refreshed)
			}
			if tc.refreshed != strings.Contains(exp.note, "refreshed") || !strings.Contains(out.String(), tc.log) {
				t.Errorf("note %q; log lacks %q:\n%s", exp.note, tc.log, out)
			}
		})
	}
}
