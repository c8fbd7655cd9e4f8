package cachemount

import (
	"context"
	"fmt"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
	"github.com/ecr-build-cache/ecr-build-cache/internal/solve"
)

// lines records what a session logs.
type lines []string

func (l *lines) Infof(f string, a ...any)    { *l = append(*l, fmt.Sprintf(f, a...)) }
func (l *lines) Noticef(f string, a ...any)  { *l = append(*l, fmt.Sprintf(f, a...)) }
func (l *lines) Warningf(f string, a ...any) { *l = append(*l, fmt.Sprintf(f, a...)) }

// Outcome says what Save did, not what the build's steps suggest: a save that
// was not safe or had nothing to keep is not "saved" (the cache-mounts output
// and the summary read it).
func TestSaveOutcome(t *testing.T) {
	t.Parallel()
	const export = "registry.test/app:cache-mounts-main"
	seeded := &registry.Artifact{Ref: export, Manifest: &v1.Manifest{Config: v1.Descriptor{MediaType: ConfigType}}}
	ranStep := []solve.Step{{Name: "[2/2] RUN make"}}
	for _, tc := range []struct {
		name      string
		s         *Session
		ran       bool
		want      Outcome
		wantKept  bool
		wantInLog string
	}{
		{"no step ran: as seeded, the tag kept", &Session{opt: Options{Export: export}, from: seeded, prev: map[string]v1.Descriptor{}},
			false, AsSeeded, true, "nothing to save"},
		{"steps ran on mounts never seeded", &Session{opt: Options{Export: export, AllCached: true}},
			true, NotSaved, false, "not seeded: not saved"},
		{"nothing to keep", &Session{opt: Options{Export: export}},
			true, NotSaved, false, ""},
	} {
		var log lines
		tc.s.opt.Log = &log
		kept, err := tc.s.Save(context.Background(), tc.ran, ranStep)
		if err != nil || kept != tc.wantKept || tc.s.Outcome() != tc.want {
			t.Errorf("%s: kept %v, outcome %v, err %v; want kept %v, outcome %v", tc.name, kept, tc.s.Outcome(), err, tc.wantKept, tc.want)
		}
		if !strings.Contains(strings.Join(log, "\n"), tc.wantInLog) {
			t.Errorf("%s: log %q, want %q", tc.name, log, tc.wantInLog)
		}
	}
}
