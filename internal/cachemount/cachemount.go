// Package cachemount keeps the contents of a Dockerfile's RUN
// --mount=type=cache mounts (Go's build cache, ~/.npm, ~/.cargo/registry, ...)
// warm across ephemeral builders, in the cache repository next to the layer
// cache: one OCI artifact per cache key, under the same keys, fallback order
// and trust rules (cacheref: MountsTag, and Plan.MountsImports/MountsExport).
//
// Before the build, Seed finds the first artifact of the run's imports and
// puts each mount's contents into the builder's cache mount through BuildKit
// itself: an exec of the action's own static binary (the helper, mounted from
// the client through the session, so no image is pulled) with the cache
// mounted under the same id, sharing and ownership as the Dockerfile's RUN.
// After the build, Save runs the helper again to tar each mount
// deterministically: a mount whose content digest is the imported one is not
// uploaded, and an artifact that did not change is not pushed. Nothing here
// fails the build: problems are warnings, and only the run's end is an error.
package cachemount

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"

	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
	"github.com/ecr-build-cache/ecr-build-cache/internal/solve"
)

// Builder is the part of *client.Client the mounts need.
type Builder interface {
	Solve(ctx context.Context, def *llb.Definition, opt client.SolveOpt, ch chan *client.SolveStatus) (*client.SolveResponse, error)
	ListWorkers(ctx context.Context, opts ...client.ListWorkersOption) ([]*client.WorkerInfo, error)
}

// Registry is the part of *registry.Client the mounts need.
type Registry interface {
	Artifact(ctx context.Context, ref string) (*registry.Artifact, error)
	Download(ctx context.Context, ref string, dgst v1.Hash, w io.Writer) error
	PushArtifact(ctx context.Context, ref string, blobs []registry.Blob, manifest []byte) error
}

// Logger is where the mounts report (a *githubactions.Action).
type Logger interface {
	Infof(format string, args ...any)
	Noticef(format string, args ...any)
	Warningf(format string, args ...any)
}

// Options are one run's cache mounts.
type Options struct {
	Builder  Builder
	Registry Registry
	Log      Logger
	// Helper is a static Linux executable of this action (os.Executable()).
	Helper     string
	Dockerfile string
	// Spec is the cache-mounts input: ["auto"], or names of mounts.
	Spec      []string
	BuildArgs map[string]string
	Platforms []string
	Target    string
	// Imports are the artifact refs to read, in priority order
	// (cacheref.Plan.MountsImports); Export the one to write, "" for none.
	Imports []string
	Export  string
	// MaxSize is the largest mount (its tar) saved, in bytes; a restore stops
	// past it, or past the size the artifact gives, whichever is larger.
	MaxSize int64
	// Shared says how the run reached a builder it did not start (a
	// long-lived daemon other workflows may use), "" for one it started for
	// this job. From a shared builder only the mounts SharedSave names are
	// saved.
	Shared     string
	SharedSave []string
	// AllCached says the build expects every step from the layer cache: no
	// RUN would read the mounts, so they are not downloaded.
	AllCached bool
	// Timeout bounds the seeding and the saving, each.
	Timeout time.Duration
}

// Session is what Seed found, for Save.
type Session struct {
	opt    Options
	mounts []Mount
	from   *registry.Artifact       // the imported artifact; nil for none
	prev   map[string]v1.Descriptor // its layers by mount key, but those that could not be extracted
	// start is what each mount held before the build; shared whether it is
	// saved from a shared builder (Options.SharedSave names it).
	start  []start
	shared []bool
	// transfer is how long seeding each mount took (0: not seeded); skipped
	// the mounts the cost rule left empty (costs.notWorthIt).
	transfer []time.Duration
	skipped  []bool
	// outcome is what Save did.
	outcome Outcome
}

// Outcome is what Save did with the mounts.
type Outcome int

const (
	NotSaved Outcome = iota // nothing written: the log's cache mounts lines say why
	AsSeeded                // no step ran: the mounts are as seeded, nothing written
	Saved                   // the export tag holds the mounts as the build left them
)

// Outcome is what Save did; NotSaved before it ran.
func (s *Session) Outcome() Outcome { return s.outcome }

// start is what a mount held before the build.
type start int

const (
	startUnknown start = iota // not looked at: nothing to seed on a builder this job started, or the seeding failed
	startEmpty                // empty, and not seeded (nothing saved, or the saved blob was refused)
	startSeeded               // seeded by this run
	startHeld                 // the builder held files this run did not put there
)

// saves tells whether Save may read mount i back: a mount the builder held
// before the run may hold another build's files (a fork's, on a shared
// builder), and a shared builder's mount is saved only when named and known
// to have started empty or seeded by this run.
func (s *Session) saves(i int) bool {
	if s.opt.Shared == "" {
		return s.start[i] != startHeld
	}
	return s.shared[i] && (s.start[i] == startEmpty || s.start[i] == startSeeded)
}

// Seed discovers the mounts and seeds them from the first artifact found. It
// returns nil when no mount is to be kept (none found or named, or a builder
// that cannot run the helper). Only ctx's end is an error.
func Seed(ctx context.Context, opt Options) (*Session, error) {
	s := &Session{opt: opt}
	if err := bounded(ctx, opt.Timeout, s.discover); err != nil || len(s.mounts) == 0 {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			opt.Log.Warningf("cache mounts: not kept: %v", err)
		}
		return nil, nil
	}
	err := bounded(ctx, opt.Timeout, s.seed)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		opt.Log.Warningf("cache mounts: not seeded, the build starts with what the builder has: %v", err)
	}
	return s, nil
}

// bounded runs f within timeout, naming the timeout when it was the cause.
func bounded(ctx context.Context, timeout time.Duration, f func(context.Context) error) error {
	fctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := f(fctx)
	if err != nil && errors.Is(fctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("not done within %s (cache-export-timeout): %w", timeout, err)
	}
	return err
}

// discover lists the Dockerfile's mounts, picks those the input names and
// checks that the builder can run the helper.
func (s *Session) discover(ctx context.Context) error {
	workers, err := s.opt.Builder.ListWorkers(ctx)
	if err != nil {
		return fmt.Errorf("list the builder's workers: %w", err)
	}
	if !canRun(workers) {
		return fmt.Errorf("the builder cannot run this action's %s/%s binary, which copies the mounts (add the platform with QEMU, or use a %s builder)",
			helperPlatform.OS, helperPlatform.Architecture, helperPlatform.Architecture)
	}
	df, err := os.ReadFile(s.opt.Dockerfile)
	if err != nil {
		return err
	}
	found, skips, err := Discover(df, DiscoverOptions{BuildArgs: s.opt.BuildArgs, BuildPlatform: platforms.Format(buildPlatform(workers)),
		TargetPlatforms: s.opt.Platforms, Target: s.opt.Target})
	if err != nil {
		return err
	}
	for _, sk := range skips {
		s.opt.Log.Warningf("cache mounts: %s line %d: the cache mount at %q is not kept: %s", filepath.Base(s.opt.Dockerfile), sk.Line, sk.Target, sk.Why)
	}
	var unknown []string
	s.mounts, unknown = Select(found, s.opt.Spec)
	for _, u := range unknown {
		s.opt.Log.Warningf("cache mounts: %q names no RUN --mount=type=cache of %s (by id or target)", u, filepath.Base(s.opt.Dockerfile))
	}
	if len(s.mounts) == 0 && len(unknown) == 0 && len(skips) == 0 {
		s.opt.Log.Infof("cache mounts: %s has no RUN --mount=type=cache", filepath.Base(s.opt.Dockerfile))
	}
	s.start = make([]start, len(s.mounts))
	s.shared = make([]bool, len(s.mounts))
	s.transfer = make([]time.Duration, len(s.mounts))
	s.skipped = make([]bool, len(s.mounts))
	if s.opt.Shared != "" && s.opt.Export != "" {
		s.selectShared()
	}
	return nil
}

// selectShared marks the mounts SharedSave names, and says which are not saved.
func (s *Session) selectShared() {
	named, unknown := Select(s.mounts, s.opt.SharedSave)
	for _, u := range unknown {
		s.opt.Log.Warningf("cache mounts: cache-mounts-shared-builder: %q names no kept cache mount of %s (by id or target)", u, filepath.Base(s.opt.Dockerfile))
	}
	var not []string
	for i, m := range s.mounts {
		s.shared[i] = slices.ContainsFunc(named, func(n Mount) bool { return n.Key() == m.Key() })
		if !s.shared[i] {
			not = append(not, describe(m))
		}
	}
	if len(not) > 0 {
		s.opt.Log.Noticef("cache mounts: %s read but not saved: this run did not start its builder (%s), where another workflow's build may have written them; "+
			"list the mounts to save anyway in cache-mounts-shared-builder, if no untrusted build uses that builder", strings.Join(not, ", "), s.opt.Shared)
	}
}

// seed imports the first mounts artifact of the imports, downloads the blobs
// of the chosen mounts and extracts them in the builder; on a shared builder
// it also looks whether the mounts to save start empty. A blob that cannot be
// downloaded or extracted leaves its own mount empty, not the others.
func (s *Session) seed(ctx context.Context) error {
	for _, ref := range s.opt.Imports {
		a, err := s.opt.Registry.Artifact(ctx, ref)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			s.opt.Log.Warningf("cache mounts: %s could not be read, skipped: %v", ref, err)
		case a == nil:
		case layers(a) == nil:
			s.opt.Log.Warningf("cache mounts: %s holds something else than cache mounts, skipped", ref)
		default:
			s.from, s.prev = a, layers(a)
		}
		if s.from != nil {
			break
		}
	}
	if s.from == nil {
		s.opt.Log.Infof("cache mounts: none saved yet (looked for %s): the mounts start empty", joinRefs(s.opt.Imports))
	}
	if s.opt.AllCached {
		// What Save needs of the artifact (whether to keep it alive) is known.
		s.opt.Log.Infof("cache mounts: not seeded: every step is expected to come from the cache, so no RUN reads them")
		return nil
	}
	dir, err := os.MkdirTemp("", "ebc-mounts-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	in := filepath.Join(dir, "in")
	if err := os.Mkdir(in, 0o755); err != nil {
		return err
	}
	req := helperRequest{Op: "seed", Mounts: make([]helperMount, len(s.mounts))}
	look := slices.Contains(s.shared, true) // whether a shared builder's mount to save starts empty
	var downloaded int64
	took := make([]time.Duration, len(s.mounts)) // each mount's download
	for i, m := range s.mounts {
		l, ok := s.prev[m.Key()]
		switch {
		case s.from == nil:
			continue
		case !ok:
			s.opt.Log.Infof("cache mounts: %s holds no %s: it starts empty", s.from.Ref, describe(m))
			continue
		case isAuto(s.opt.Spec) && costsOf(l).notWorthIt():
			s.skipped[i] = true
			s.opt.Log.Infof("cache mounts: %s not seeded: it costs more than it saves (%s when last measured): it starts empty", describe(m), costsOf(l))
			continue
		}
		req.Mounts[i].Max = s.limit(l)
		name := strconv.Itoa(i) + ".tar.zst"
		began := time.Now()
		err := download(ctx, s.opt.Registry, s.from.Ref, l, req.Mounts[i].Max, filepath.Join(in, name))
		took[i] = time.Since(began)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, errTooBig):
			s.refuse(m, "is larger than cache-mounts-max-size and the size the artifact gives (%s)", size(req.Mounts[i].Max))
		case err != nil:
			s.opt.Log.Warningf("cache mounts: %s of %s could not be downloaded: it starts empty: %v", describe(m), s.from.Ref, err)
		default:
			downloaded += l.Size
			req.Mounts[i].Blob = name
			look = true
		}
	}
	if !look {
		return nil
	}
	began := time.Now()
	res, err := runHelper(ctx, s.opt.Builder, s.opt.Helper, req, s.mounts, in, filepath.Join(dir, "out"))
	if err != nil {
		return err
	}
	s.measure(took, time.Since(began), res)
	if downloaded > 0 {
		s.opt.Log.Infof("cache mounts: imported %s (%s downloaded)", s.from.Ref, size(downloaded))
	}
	for i, m := range s.mounts {
		switch r := res.Mounts[i]; r.State {
		case stateSeeded:
			s.start[i] = startSeeded
			s.opt.Log.Infof("cache mounts: %s seeded: %d entries, %s", describe(m), r.Entries, size(r.Size))
		case stateNotEmpty:
			s.start[i] = startHeld
			s.opt.Log.Infof("cache mounts: %s already holds files in this builder: kept as it is, and not saved (this run did not put them there)", describe(m))
		case stateEmpty:
			s.start[i] = startEmpty
		case stateTooBig:
			s.start[i] = startEmpty
			s.refuse(m, "expands past cache-mounts-max-size and the size the artifact gives (%s)", size(r.Size))
		case stateDamaged:
			s.start[i] = startEmpty
			s.refuse(m, "is damaged (%s)", r.Error)
		}
	}
	return nil
}

// measure records each seeded mount's transfer: its download, its
// extraction, and an even share of the rest of the helper's exec.
func (s *Session) measure(downloads []time.Duration, exec time.Duration, res helperResult) {
	var seeded int
	rest := exec
	for _, r := range res.Mounts {
		if r.State == stateSeeded {
			seeded++
			rest -= time.Duration(r.Millis) * time.Millisecond
		}
	}
	for i, r := range res.Mounts {
		if r.State == stateSeeded {
			s.transfer[i] = downloads[i] + time.Duration(r.Millis)*time.Millisecond + max(rest, 0)/time.Duration(seeded)
		}
	}
}

// limit bounds the restore of layer l: cache-mounts-max-size, or the size the
// artifact gives when larger (a limit lowered since the save).
func (s *Session) limit(l v1.Descriptor) int64 {
	n, err := strconv.ParseInt(l.Annotations[AnnotationSize], 10, 64)
	if err != nil {
		return s.opt.MaxSize
	}
	return max(s.opt.MaxSize, n)
}

// refuse warns that m's saved contents are not used, and forgets them: Save
// neither keeps them nor compares with them.
func (s *Session) refuse(m Mount, why string, args ...any) {
	s.opt.Log.Warningf("cache mounts: the saved %s in %s %s: not extracted, the mount starts empty", describe(m), s.from.Ref, fmt.Sprintf(why, args...))
	delete(s.prev, m.Key())
}

// download copies blob l of ref to path, refusing more than limit bytes
// (errTooBig) or than l gives.
func download(ctx context.Context, reg Registry, ref string, l v1.Descriptor, limit int64, path string) error {
	if l.Size > limit {
		return errTooBig
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := reg.Download(ctx, ref, l.Digest, &countingWriter{w: f, limit: l.Size}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Export is the ref Save writes.
func (s *Session) Export() string { return s.opt.Export }

// Save stores the mounts whose contents changed in the export artifact. ran
// says whether a build step ran: a build whose every step came from the cache
// ran no RUN, so its mounts are as seeded and are not read back. Only mounts
// this run seeded or that started empty are read back, and from a shared
// builder only those Options.SharedSave names; the others keep what was saved
// before. It reports whether the export tag holds the mounts as it did before
// the run (nothing pushed), which a caller may keep alive. It does nothing for
// a run that exports no cache. Only ctx's end is an error.
func (s *Session) Save(ctx context.Context, ran bool, steps []solve.Step) (kept bool, err error) {
	if s == nil || s.opt.Export == "" {
		return false, nil
	}
	switch {
	case !ran && s.from != nil && len(s.prev) == len(layers(s.from)):
		s.opt.Log.Infof("cache mounts: every step came from the cache, so no RUN changed the mounts: nothing to save")
		s.outcome = AsSeeded
		return s.from.Ref == s.opt.Export, nil
	case ran && s.opt.AllCached:
		// They started as the builder had them, maybe empty: saving them
		// would replace fuller saved contents.
		s.opt.Log.Infof("cache mounts: steps ran although every step was expected to come from the cache, so the mounts were not seeded: not saved")
		return false, nil
	}
	err = bounded(ctx, s.opt.Timeout, func(ctx context.Context) error {
		kept, err = s.save(ctx, ran, steps)
		return err
	})
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		s.opt.Log.Warningf("cache mounts: not saved to %s (the image is fine): %v", s.opt.Export, err)
	}
	return kept, nil
}

func (s *Session) save(ctx context.Context, ran bool, steps []solve.Step) (kept bool, err error) {
	dir, err := os.MkdirTemp("", "ebc-mounts-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	// read are the mounts read back: none after a build that ran no step
	// (it only drops the saved contents the seeding refused).
	var read []int
	for i, m := range s.mounts {
		switch {
		case !ran:
		case s.skipped[i]: // left empty by the cost rule: what was saved stays
		case s.saves(i):
			read = append(read, i)
		case s.start[i] == startHeld:
			s.opt.Log.Infof("cache mounts: %s not saved: the builder held files before this run", describe(m))
		case s.opt.Shared != "" && s.shared[i]:
			s.opt.Log.Infof("cache mounts: %s not saved: whether it was empty before this run is unknown (the seeding failed)", describe(m))
		}
	}
	res := helperResult{Mounts: make([]mountResult, len(s.mounts))}
	if len(read) > 0 {
		req := helperRequest{Op: "save", Max: s.opt.MaxSize, Mounts: make([]helperMount, len(read))}
		mounts := make([]Mount, len(read))
		for j, i := range read {
			mounts[j] = s.mounts[i]
			req.Mounts[j].Prev = s.prev[s.mounts[i].Key()].Annotations[AnnotationSum]
		}
		got, err := runHelper(ctx, s.opt.Builder, s.opt.Helper, req, mounts, "", dir)
		if err != nil {
			return false, err
		}
		for j, i := range read {
			res.Mounts[i] = got.Mounts[j]
		}
	}
	var ls []v1.Descriptor
	var blobs []registry.Blob
	var upload int64
	for i, m := range s.mounts {
		r := res.Mounts[i]
		prev, had := s.prev[m.Key()]
		// What this run measured, when the steps using the mount ran: with it
		// seeded, or empty (found empty, or not seeded on a builder this job
		// started).
		var now costs
		t := stepsUsing(m, steps)
		switch {
		case t == 0:
		case s.transfer[i] > 0:
			now = costs{transfer: s.transfer[i], seeded: t}
		case s.start[i] == startEmpty || s.opt.Shared == "" && s.start[i] == startUnknown:
			now = costs{empty: t}
		}
		keep := func() string {
			if !had {
				return "not saved"
			}
			ls = append(ls, prev)
			return "the saved contents are kept"
		}
		switch r.State {
		case "": // not read back
			if s.skipped[i] && had {
				prev = now.record(prev, false) // the steps' time without it decides the next run
			}
			keep()
		case stateUnchanged:
			ls = append(ls, now.record(prev, true))
			s.opt.Log.Infof("cache mounts: %s unchanged", describe(m))
		case stateChanged:
			l, err := layer(m, r)
			if err != nil {
				return false, err
			}
			ls = append(ls, costsOf(prev).over(now).record(l, false))
			blobs = append(blobs, fileBlob(l, filepath.Join(dir, r.Blob)))
			upload += l.Size
			s.opt.Log.Infof("cache mounts: %s changed: %d entries, %s (%s compressed)", describe(m), r.Entries, size(r.Size), size(l.Size))
		case stateTooBig:
			s.opt.Log.Warningf("cache mounts: %s is larger than cache-mounts-max-size (%s): %s", describe(m), size(s.opt.MaxSize), keep())
		case stateEmpty:
			// Its RUN did not run and it was not seeded (or the seeding failed).
			s.opt.Log.Infof("cache mounts: %s is empty: %s", describe(m), keep())
		}
	}
	if len(ls) == 0 {
		return false, nil
	}
	if s.from != nil && s.from.Ref == s.opt.Export && sameLayers(ls, s.from.Manifest.Layers) {
		s.opt.Log.Infof("cache mounts: %s is up to date: nothing uploaded", s.opt.Export)
		s.outcome = Saved
		return true, nil
	}
	raw, err := manifest(ls, time.Now())
	if err != nil {
		return false, err
	}
	if err := s.opt.Registry.PushArtifact(ctx, s.opt.Export, append([]registry.Blob{configBlob()}, blobs...), raw); err != nil {
		return false, err
	}
	s.opt.Log.Infof("cache mounts: saved to %s (%s uploaded)", s.opt.Export, size(upload))
	s.outcome = Saved
	return false, nil
}

// describe names a mount for the log: the Dockerfile's text is quoted.
func describe(m Mount) string {
	return fmt.Sprintf("%q (line %d)", m.Name, m.Line)
}

func joinRefs(refs []string) string {
	if len(refs) == 0 {
		return "no ref: the run has no cache key"
	}
	return strings.Join(refs, ", ")
}

// size formats a byte count for the log.
func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
