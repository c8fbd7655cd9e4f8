// Package solve runs one Dockerfile build on a BuildKit daemon through the BuildKit
// client: Dockerfile frontend, image pushed to a registry, and a registry cache
// exported and imported in the OCI format that Amazon ECR accepts.
package solve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	gatewayapi "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/moby/buildkit/util/progress/progressui"
	digest "github.com/opencontainers/go-digest"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"
)

// Solver is the part of *client.Client a build needs.
type Solver interface {
	Solve(ctx context.Context, def *llb.Definition, opt client.SolveOpt, ch chan *client.SolveStatus) (*client.SolveResponse, error)
}

// Request describes one build.
type Request struct {
	ContextDir string
	Dockerfile string // path to the Dockerfile
	Target     string
	BuildArgs  map[string]string
	Labels     map[string]string
	NoCache    bool
	Platforms  []string
	// Attests are frontend attestations by kind ("provenance", "sbom") with their options.
	Attests map[string]string
	// Annotations are image exporter attributes (annotation.KEY, annotation-index.KEY, ...).
	Annotations map[string]string
	// Secrets reach RUN --mount=type=secret through the session, in memory.
	Secrets map[string][]byte
	// SSH reaches RUN --mount=type=ssh: agent sockets and key files.
	SSH []SSH
	// Contexts are named build contexts by name: a local directory, or what the
	// frontend reads itself (see ClassifyContext).
	Contexts map[string]string
	// Pull resolves every image from its registry, never the builder's store.
	Pull           bool
	NoCacheFilters []string // stages built without cache
	Entitlements   []string // e.g. network.host, security.insecure
	// Network is the RUN steps' network: "" (the builder's), "host" or "none".
	Network      string
	AddHosts     []string // host=ip, into every RUN step's /etc/hosts
	ShmSize      int64    // bytes of /dev/shm; 0 is the builder's default
	Ulimits      []string // name=soft[:hard]
	CgroupParent string

	Tags []string // full image references
	Push bool
	// PushByDigest pushes the image to Repository by digest only, without
	// tags (Tags must be empty): one platform of an image that a merge step
	// assembles from several builds.
	PushByDigest bool
	Repository   string // full repository name (host/path), for PushByDigest
	// PushTimeout bounds one image push (Push); zero means no bound.
	PushTimeout time.Duration
	// ImageAttrs are further image exporter attributes (an outputs input's
	// type=image entry: push-by-digest, name-canonical, ...).
	ImageAttrs map[string]string
	// Outputs are further places the result goes (outputs, load).
	Outputs []Output

	CacheImports []string  // full refs, highest priority first
	CacheExport  string    // full ref; "" exports no cache
	CacheMode    CacheMode // max or min
	// CacheExportTimeout bounds a hung cache export; the image, pushed before the
	// cache export starts, stands. Zero means no bound.
	CacheExportTimeout time.Duration
	// Compression compresses the layers the build makes for the image, and
	// CacheCompression those the cache export makes: the layers only the cache
	// holds. A layer in both keeps the blob the image exporter made (compression
	// is not forced), so no layer is compressed twice.
	Compression      Compression
	CacheCompression Compression

	// Insecure tells the refs whose registry is reached over plain HTTP.
	Insecure func(ref string) bool
	// Session carries credentials (and later secrets) to buildkitd in memory.
	Session []session.Attachable
}

// Result is what a build did.
type Result struct {
	Digest  string // manifest digest of the pushed image
	ImageID string // config digest
	Steps   []Step
	// Warnings are what the frontend warned about (lint rules, deprecated syntax).
	Warnings []Warning
	Duration time.Duration // the whole solve
	// ImageDuration is the image export's part of Duration, its push included.
	ImageDuration    time.Duration
	ExporterResponse map[string]string
	// Pushed is set when the image reached the registry (Digest names it).
	Pushed bool
	// Export is the cache export this solve ran; nil when it ran none.
	Export *Export
}

// CacheMode is what a cache export holds: every stage's layers (max) or only
// the final image's (min).
type CacheMode string

const (
	CacheModeMax CacheMode = "max"
	CacheModeMin CacheMode = "min"
)

// Compression is how the layers a build makes are compressed. The image and
// the cache get the same: compressed differently, BuildKit compresses every
// layer once per exporter (marin-community/marin#6670). It is never forced: a
// layer that already has a blob (a base image's, an imported cache's) keeps
// it, and so its digest, which registries share across images.
type Compression struct {
	Type  string // gzip, zstd or uncompressed; "" is BuildKit's default, gzip
	Level *int   // nil: the type's default
}

// compressionLevels are the levels each compression takes, as buildx documents
// them; uncompressed takes none.
var compressionLevels = map[string][2]int{"gzip": {0, 9}, "zstd": {0, 22}, "uncompressed": {}}

// ParseCompression reads a compression type and level ("" for the type's
// default), returning every problem with them. No type is the exporters'
// default, gzip, or with a level, gzip at that level.
func ParseCompression(typ, level string) (Compression, error) {
	if typ == "" && level == "" {
		return Compression{}, nil
	}
	typ = cmp.Or(typ, "gzip")
	r, ok := compressionLevels[typ]
	if !ok {
		return Compression{}, fmt.Errorf("compression: %q is not gzip, zstd or uncompressed", typ)
	}
	c := Compression{Type: typ}
	if level == "" {
		return c, nil
	}
	if typ == "uncompressed" {
		return c, fmt.Errorf("compression-level: %q: uncompressed layers take no level; remove compression-level or set compression to gzip or zstd", level)
	}
	n, err := strconv.Atoi(level)
	if err != nil || n < r[0] || n > r[1] {
		return c, fmt.Errorf("compression-level: %q is not a whole number from %d to %d (%s's levels)", level, r[0], r[1], typ)
	}
	c.Level = &n
	return c, nil
}

// addTo sets the compression attributes of an image or cache exporter.
func (c Compression) addTo(attrs map[string]string) {
	if c.Type != "" {
		attrs["compression"] = c.Type
	}
	if c.Level != nil {
		attrs["compression-level"] = strconv.Itoa(*c.Level)
	}
}

// ExportFailure is how a cache export failed.
type ExportFailure int

const (
	ExportFailed   ExportFailure = iota // the registry or BuildKit refused or broke off the export
	ExportTimedOut                      // cache-export-timeout stopped a hung export
)

// ExportError is why the cache was not saved; the image stands.
type ExportError struct {
	Kind ExportFailure
	Msg  string
}

func (e *ExportError) Error() string { return e.Msg }

// CachedSteps counts the steps served from cache.
func (r *Result) CachedSteps() int {
	n := 0
	for _, s := range r.Steps {
		if s.Cached {
			n++
		}
	}
	return n
}

// Build solves req on s in one solve, as buildctl would, printing progress in
// plain mode: the build with the cache imports, the image (pushed when req.Push
// says so), the outputs and the cache export (req.CacheExport, with
// ignore-error=true: a failed export leaves res.Export.Err and the build
// stands). Two clocks may stop the solve: req.CacheExportTimeout from the
// start of the cache export (res.Export.Err says it timed out; res.Pushed says
// whether the image got in first), and req.PushTimeout from the start of the
// image export, since BuildKit's registry client has no response timeout. A
// failed image push is a *PushError, so that the caller can push again alone
// (Push) without building again.
func Build(ctx context.Context, s Solver, req Request, progress io.Writer) (*Result, error) {
	opt, err := solveOpt(req)
	if err != nil {
		return nil, err
	}
	solveCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	clocks := &clocks{stop: stop}
	defer clocks.halt()
	if req.CacheExport != "" && req.CacheExportTimeout > 0 {
		clocks.add("exporting cache", req.CacheExportTimeout, errExportTimedOut)
	}
	if req.Push && req.PushTimeout > 0 {
		clocks.add("exporting to image", req.PushTimeout, errPushTimedOut)
	}
	t := newTally()
	start := time.Now()
	resp, err := solve(solveCtx, solveWith(s, opt), progress, func(st *client.SolveStatus) {
		t.add(st)
		clocks.watch(st)
	})
	res := &Result{Steps: t.result(), Warnings: t.warnings, Duration: time.Since(start), ImageDuration: t.imageDone}
	names := strings.Join(req.imageNames(), ", ")
	switch cause := context.Cause(solveCtx); {
	case ctx.Err() != nil:
		return res, ctx.Err()
	case err == nil: // finished as a clock struck: it stands
	case errors.Is(cause, errPushTimedOut):
		return res, pushTimedOut(req)
	case errors.Is(cause, errExportTimedOut):
		// The image export ran before the cache export began: its progress
		// names the image, and whether every name's manifest was pushed.
		res.Export = &Export{Duration: t.exportTook(), Err: exportTimedOut(req)}
		var pushed bool
		res.Digest, res.ImageID, pushed = t.image.pushed(len(req.imageNames()))
		res.Pushed = req.Push && pushed
		res.ExporterResponse = map[string]string{}
		if res.Digest != "" {
			res.ExporterResponse["containerimage.digest"] = res.Digest
			res.ExporterResponse["containerimage.config.digest"] = res.ImageID
		}
		return res, nil
	case err != nil && t.imageErr != "" && !t.stepFailed():
		return res, &PushError{fmt.Errorf("push %s: %w", names, err)}
	case err != nil:
		return res, fmt.Errorf("build %s: %w", req.Dockerfile, err)
	}
	res.exported(resp.ExporterResponse)
	res.Pushed = req.Push
	if req.CacheExport != "" {
		res.Export = &Export{Duration: t.exportTook(), Err: t.exportErr(resp)}
	}
	return res, nil
}

// The causes Build stops a solve with.
var (
	errExportTimedOut = errors.New("cache export timed out")
	errPushTimedOut   = errors.New("image push timed out")
)

func pushTimedOut(req Request) *PushError {
	return &PushError{fmt.Errorf("push %s: stopped after %s: the registry did not finish taking the image", strings.Join(req.imageNames(), ", "), req.PushTimeout)}
}

func exportTimedOut(req Request) *ExportError {
	return &ExportError{ExportTimedOut, fmt.Sprintf("the cache export did not finish within %s and was stopped", req.CacheExportTimeout)}
}

// PushError is a failed image push: the build itself succeeded.
type PushError struct{ Err error }

func (e *PushError) Error() string { return e.Err.Error() }
func (e *PushError) Unwrap() error { return e.Err }

// clocks stop a solve a set time after a vertex (by name prefix) starts. The
// solve's status stream calls watch; halt runs after the solve returned.
type clocks struct {
	stop    context.CancelCauseFunc
	pending []clock
	timers  []*time.Timer
}

type clock struct {
	prefix string
	after  time.Duration
	cause  error
}

func (c *clocks) add(prefix string, after time.Duration, cause error) {
	c.pending = append(c.pending, clock{prefix, after, cause})
}

// watch starts the clock of every vertex in st that started.
func (c *clocks) watch(st *client.SolveStatus) {
	for _, v := range st.Vertexes {
		if v.Started == nil {
			continue
		}
		c.pending = slices.DeleteFunc(c.pending, func(k clock) bool {
			if !strings.HasPrefix(v.Name, k.prefix) {
				return false
			}
			c.timers = append(c.timers, time.AfterFunc(k.after, func() { c.stop(k.cause) }))
			return true
		})
	}
}

func (c *clocks) halt() {
	for _, t := range c.timers {
		t.Stop()
	}
}

func (r *Result) exported(resp map[string]string) {
	r.ExporterResponse = resp
	r.Digest = resp["containerimage.digest"]
	r.ImageID = resp["containerimage.config.digest"]
}

// Push pushes the image of the build req described, alone, after a Build
// whose push failed or was stopped: every step is in the builder, so this
// solve only runs the image exporter. It is stopped after req.PushTimeout, as
// in Build. On success res names the pushed image; a failed push is a
// *PushError.
func Push(ctx context.Context, s Solver, req Request, res *Result, progress io.Writer) error {
	// Build ran the steps (no-cache included) and wrote the outputs: running
	// the steps again would push other layers.
	req.CacheExport, req.Push, req.Outputs = "", true, nil
	req.NoCache, req.NoCacheFilters = false, nil
	opt, err := solveOpt(req)
	if err != nil {
		return err
	}
	pushCtx, cancel := context.WithTimeout(ctx, cmp.Or(req.PushTimeout, time.Duration(math.MaxInt64)))
	defer cancel()
	resp, err := solve(pushCtx, solveWith(s, opt), progress, func(*client.SolveStatus) {}, only("exporting to image"))
	names := strings.Join(req.imageNames(), ", ")
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(pushCtx.Err(), context.DeadlineExceeded):
		return pushTimedOut(req)
	case err != nil:
		return &PushError{fmt.Errorf("push %s: %w", names, err)}
	}
	res.exported(resp.ExporterResponse)
	res.Pushed = true
	return nil
}

// retryable matches a registry's 429 or 5xx in a failed push, which reaches the
// client only as text. BuildKit gives up on them quickly: containerd tries a 429
// five times at once, ignoring Retry-After, and BuildKit a 5xx for about 7 s
// (docker/buildx#3630). Distribution renders a 500 as its "unknown" error code.
var retryable = regexp.MustCompile(`(?i)\b(429|500|502|503|504)\b|toomanyrequests|too many requests|: unknown: `)

// Retryable reports whether a failed push was the registry throttling or
// failing, or an upload race, which a later attempt may get past.
func Retryable(err error) bool {
	return err != nil && (retryable.MatchString(err.Error()) || UploadRace(err.Error()))
}

// uploadRace matches a blob upload that another upload of the same blob
// overtook: in one solve the image push and the cache export upload the same
// layers at once. Distribution 2.8.2 then failed one of them here with
// "provided digest did not match uploaded content" (a DIGEST_INVALID on the
// final PUT); other registries say "blob upload invalid" or "unknown"
// (sonatype/nexus-public#967).
var uploadRace = regexp.MustCompile(`(?i)provided digest did not match uploaded content|blob upload (invalid|unknown)`)

// UploadRace reports whether a failed push or cache export (its message) lost
// an upload race, which pushing alone gets past.
func UploadRace(msg string) bool { return uploadRace.MatchString(msg) }

// contentUnavailable matches containerd's error for a blob it could not fetch
// (a cache blob the registry lost, while the push copies it).
var contentUnavailable = regexp.MustCompile(`httpReadSeeker|could not fetch content`)

// ContentUnavailable reports whether a failed Push could not read the content
// of a layer from where the build's cache said it was.
func ContentUnavailable(err error) bool {
	return err != nil && contentUnavailable.MatchString(err.Error())
}

// CommandFailed reports whether a failed Build was a command of the build (a
// RUN step) exiting non-zero: the build's own failure, whatever its cache.
func CommandFailed(err error) bool {
	var exit *gatewayapi.ExitError
	return errors.As(err, &exit)
}

// Export is what a cache export did.
type Export struct {
	Duration time.Duration
	Err      *ExportError // the cache was not saved; the image stands
}

// ExportCache exports the cache of the build req described, alone, after a
// Build that ran no export: every step is in the builder's cache, so this
// solve only writes req.CacheExport. A failure is in the Export (the image
// stands); only ctx's end is an error.
func ExportCache(ctx context.Context, s Solver, req Request, progress io.Writer) (Export, error) {
	req.Tags, req.Push, req.PushByDigest, req.ImageAttrs, req.Outputs = nil, false, false, nil, nil
	// Build ran the steps, no-cache included: the cache must hold those layers.
	req.NoCache, req.NoCacheFilters = false, nil
	opt, err := solveOpt(req)
	if err != nil {
		return Export{}, err
	}
	exportCtx, cancel := context.WithTimeout(ctx, cmp.Or(req.CacheExportTimeout, time.Duration(math.MaxInt64)))
	defer cancel()
	t := newTally()
	start := time.Now()
	resp, err := solve(exportCtx, solveWith(s, opt), progress, t.add, only("exporting cache", "importing cache"))
	e := Export{Duration: time.Since(start)}
	switch {
	case ctx.Err() != nil:
		return e, ctx.Err()
	case errors.Is(exportCtx.Err(), context.DeadlineExceeded):
		e.Err = exportTimedOut(req)
	case err != nil:
		e.Err = &ExportError{ExportFailed, err.Error()}
	default:
		e.Err = t.exportErr(resp)
	}
	return e, nil
}

// exportedCacheKey is the solve response's descriptor of an exported registry cache.
const exportedCacheKey = "cache.manifest"

// solveFunc runs one solve on the daemon, sending its statuses to ch and closing it.
type solveFunc func(ctx context.Context, ch chan *client.SolveStatus) (*client.SolveResponse, error)

func solveWith(s Solver, opt client.SolveOpt) solveFunc {
	return func(ctx context.Context, ch chan *client.SolveStatus) (*client.SolveResponse, error) {
		return s.Solve(ctx, nil, opt, ch)
	}
}

// solve runs one solve, feeding every status to observe and those that pass the
// filters to a plain progress display on progress.
func solve(ctx context.Context, run solveFunc, progress io.Writer, observe func(*client.SolveStatus), filters ...func(*client.SolveStatus) *client.SolveStatus) (*client.SolveResponse, error) {
	var resp *client.SolveResponse
	solveCh := make(chan *client.SolveStatus)
	displayCh := make(chan *client.SolveStatus)
	eg, egctx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		var err error
		resp, err = run(egctx, solveCh)
		return err
	})
	eg.Go(func() error {
		defer close(displayCh)
		watch := newExportWatch()
		tick := time.NewTicker(stillRunningEvery / 3)
		defer tick.Stop()
		for {
			select {
			case st, ok := <-solveCh:
				if !ok {
					return nil
				}
				observe(st)
				watch.add(st, time.Now())
				for _, f := range filters {
					st = f(st)
				}
				displayCh <- st
			case now := <-tick.C:
				if st := watch.still(now); st != nil {
					displayCh <- st
				}
			}
		}
	})
	eg.Go(func() error {
		d, err := progressui.NewDisplay(progress, progressui.PlainMode)
		if err != nil {
			return err
		}
		// Not egctx: the display must drain the channel and show the failing step.
		_, err = d.UpdateFrom(context.WithoutCancel(ctx), displayCh)
		return err
	})
	return resp, eg.Wait()
}

// only keeps the log of a solve after Build to the vertices named with one of
// prefixes (its exporter's): its build steps are all cached and were shown by
// the build.
func only(prefixes ...string) func(*client.SolveStatus) *client.SolveStatus {
	keep := map[digest.Digest]bool{}
	return func(st *client.SolveStatus) *client.SolveStatus {
		out := &client.SolveStatus{}
		for _, v := range st.Vertexes {
			if slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(v.Name, p) }) {
				keep[v.Digest] = true
				out.Vertexes = append(out.Vertexes, v)
			}
		}
		for _, vs := range st.Statuses {
			if keep[vs.Vertex] {
				out.Statuses = append(out.Statuses, vs)
			}
		}
		for _, l := range st.Logs {
			if keep[l.Vertex] {
				out.Logs = append(out.Logs, l)
			}
		}
		return out
	}
}

func solveOpt(req Request) (client.SolveOpt, error) {
	ctxFS, err := fsutil.NewFS(req.ContextDir)
	if err != nil {
		return client.SolveOpt{}, fmt.Errorf("build context %s: %w", req.ContextDir, err)
	}
	dfFS, err := fsutil.NewFS(filepath.Dir(req.Dockerfile))
	if err != nil {
		return client.SolveOpt{}, fmt.Errorf("dockerfile directory %s: %w", filepath.Dir(req.Dockerfile), err)
	}
	attrs := map[string]string{"filename": filepath.Base(req.Dockerfile)}
	if req.Target != "" {
		attrs["target"] = req.Target
	}
	if req.NoCache {
		attrs["no-cache"] = ""
	}
	for k, v := range req.BuildArgs {
		attrs["build-arg:"+k] = v
	}
	for k, v := range req.Labels {
		attrs["label:"+k] = v
	}
	if len(req.Platforms) > 0 {
		attrs["platform"] = strings.Join(req.Platforms, ",")
	}
	for kind, opts := range req.Attests {
		attrs["attest:"+kind] = opts
	}
	opt := client.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: attrs,
		LocalMounts:   map[string]fsutil.FS{"context": ctxFS, "dockerfile": dfFS},
		Session:       req.Session,
	}
	opt.Session = slices.Clone(opt.Session)
	if len(req.Secrets) > 0 {
		opt.Session = append(opt.Session, secretsprovider.FromMap(req.Secrets))
	}
	if err := addRunOptions(&opt, req); err != nil {
		return client.SolveOpt{}, err
	}
	if len(req.Tags) > 0 || req.Push || len(req.ImageAttrs) > 0 {
		names := req.imageNames()
		img := map[string]string{
			"name": strings.Join(names, ","),
			"push": fmt.Sprint(req.Push),
		}
		if req.PushByDigest {
			// The name is the repository alone, pushed as name@digest (buildx's
			// recipe for multi-platform images built on several runners).
			img["push-by-digest"] = "true"
			img["name-canonical"] = "true"
		}
		if slices.ContainsFunc(names, req.insecure) {
			img["registry.insecure"] = "true"
		}
		req.Compression.addTo(img)
		maps.Copy(img, req.ImageAttrs)
		maps.Copy(img, req.Annotations)
		opt.Exports = []client.ExportEntry{{Type: client.ExporterImage, Attrs: img}}
	}
	addOutputs(&opt, req)
	for _, ref := range req.CacheImports {
		opt.CacheImports = append(opt.CacheImports, client.CacheOptionsEntry{Type: "registry", Attrs: req.registryAttrs(ref)})
	}
	if req.CacheExport != "" {
		attrs := req.registryAttrs(req.CacheExport)
		attrs["mode"] = string(req.CacheMode)
		// ECR rejects the legacy cache index (aws/containers-roadmap#876); set both
		// explicitly since older daemons default them off.
		attrs["image-manifest"] = "true"
		attrs["oci-mediatypes"] = "true"
		// A failed cache export must not fail a good build (moby/buildkit#3430).
		attrs["ignore-error"] = "true"
		req.CacheCompression.addTo(attrs)
		opt.CacheExports = []client.CacheOptionsEntry{{Type: "registry", Attrs: attrs}}
	}
	return opt, nil
}

// imageNames are the names the image exporter gives the image.
func (req Request) imageNames() []string {
	if req.PushByDigest {
		return []string{req.Repository}
	}
	return req.Tags
}

func (req Request) registryAttrs(ref string) map[string]string {
	attrs := map[string]string{"ref": ref}
	if req.insecure(ref) {
		attrs["registry.insecure"] = "true"
	}
	return attrs
}

func (req Request) insecure(ref string) bool { return req.Insecure != nil && req.Insecure(ref) }
