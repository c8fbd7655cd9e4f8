package cachemount

import (
	"fmt"
	"maps"
	"path"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ecr-build-cache/ecr-build-cache/internal/solve"
)

// costs are what a mount cost and saved, as its layer's annotations record
// them: a value is 0 when never measured.
type costs struct {
	transfer time.Duration // downloading and extracting it, at its last seeding
	seeded   time.Duration // the RUN steps using it, when they last ran with it seeded
	empty    time.Duration // the same steps, when they last ran with it empty
}

func costsOf(l v1.Descriptor) costs {
	ms := func(key string) time.Duration {
		n, err := strconv.ParseInt(l.Annotations[key], 10, 64)
		if err != nil || n < 0 {
			return 0
		}
		return time.Duration(n) * time.Millisecond
	}
	return costs{transfer: ms(AnnotationTransfer), seeded: ms(AnnotationSeeded), empty: ms(AnnotationEmpty)}
}

// notWorthIt tells a mount whose last seeding took longer than its steps
// saved (their time empty less their time seeded): the rule that skips it.
// It needs all three measured.
func (c costs) notWorthIt() bool {
	return c.transfer > 0 && c.seeded > 0 && c.empty > 0 && c.transfer > c.empty-c.seeded
}

func (c costs) String() string {
	return fmt.Sprintf("restoring it took %s, its steps took %s with it and %s without", c.transfer.Round(time.Millisecond),
		c.seeded.Round(time.Millisecond), c.empty.Round(time.Millisecond))
}

// over is c with the values o measured.
func (c costs) over(o costs) costs {
	for _, p := range []struct{ to, from *time.Duration }{{&c.transfer, &o.transfer}, {&c.seeded, &o.seeded}, {&c.empty, &o.empty}} {
		if *p.from > 0 {
			*p.to = *p.from
		}
	}
	return c
}

// record returns l with c's measured values: all of them when fill is false
// (a new layer), else only those l lacks, so that an unchanged mount's layer
// stays the same (and the artifact is not pushed again) once measured.
func (c costs) record(l v1.Descriptor, fill bool) v1.Descriptor {
	a := maps.Clone(l.Annotations)
	if a == nil {
		a = map[string]string{}
	}
	for key, d := range map[string]time.Duration{AnnotationTransfer: c.transfer, AnnotationSeeded: c.seeded, AnnotationEmpty: c.empty} {
		if _, had := a[key]; d > 0 && (!fill || !had) {
			a[key] = strconv.FormatInt(max(d.Milliseconds(), 1), 10)
		}
	}
	l.Annotations = a
	return l
}

// stepsUsing is the time of the steps that ran (not from the cache) and
// mount m, by their names: BuildKit names a RUN step after its text, which
// carries the mount's options. 0 when none ran.
func stepsUsing(m Mount, steps []solve.Step) time.Duration {
	var d time.Duration
	for _, st := range steps {
		if !st.Cached && st.Error == "" && mounts(st.Name, m) {
			d += st.Duration
		}
	}
	return d
}

// mounts tells whether a RUN step's name has a --mount=type=cache flag for m:
// its target, and its id (the target when it has none) as m's name.
func mounts(name string, m Mount) bool {
	for _, f := range strings.Fields(name) {
		opts, ok := strings.CutPrefix(f, "--mount=")
		if !ok {
			continue
		}
		var typ, target, id string
		for _, o := range strings.Split(opts, ",") {
			k, v, _ := strings.Cut(o, "=")
			switch strings.ToLower(k) {
			case "type":
				typ = v
			case "target", "dst", "destination":
				target = v
			case "id":
				id = v
			}
		}
		if id == "" && target != "" {
			id = path.Clean(target)
		}
		if typ == "cache" && asWritten(target) == asWritten(m.Target) && asWritten(id) == m.Name {
			return true
		}
	}
	return false
}
