package cachemount

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"
)

// Where the helper's exec sees its inputs and the cache mounts.
const (
	execBin = "/ebc/bin"
	execIn  = "/ebc/in"
	execOut = "/ebc/out"
	execMnt = "/ebc/m"

	localBin = "ecr-build-cache-helper" // the helper's directory, through the session
	localIn  = "ecr-build-cache-mounts" // the downloaded blobs
)

// helperPlatform is the platform the helper binary runs on.
var helperPlatform = ocispecs.Platform{OS: "linux", Architecture: runtime.GOARCH}

// canRun reports whether a worker runs helperPlatform (natively or emulated).
func canRun(workers []*client.WorkerInfo) bool {
	if runtime.GOOS != "linux" {
		return false
	}
	for _, w := range workers {
		for _, p := range w.Platforms {
			if p.OS == helperPlatform.OS && p.Architecture == helperPlatform.Architecture {
				return true
			}
		}
	}
	return false
}

// buildPlatform is the platform the builder builds for by default (the
// frontend's BUILDPLATFORM): its first worker's first.
func buildPlatform(workers []*client.WorkerInfo) ocispecs.Platform {
	for _, w := range workers {
		if len(w.Platforms) > 0 {
			return w.Platforms[0]
		}
	}
	return helperPlatform
}

// sharing maps the Dockerfile's sharing option to LLB's.
func sharing(s string) llb.CacheMountSharingMode {
	switch s {
	case "private":
		return llb.CacheMountPrivate
	case "locked":
		return llb.CacheMountLocked
	}
	return llb.CacheMountShared
}

// cacheMount mounts m as the Dockerfile frontend does (dispatchRunMounts), so
// the exec reaches the very cache the build's RUN uses: the same id and
// sharing and, for uid/gid/mode, the same directory made by the same file op
// (BuildKit keys such a cache on that op's result).
func cacheMount(m Mount) (llb.State, []llb.MountOption) {
	opts := []llb.MountOption{llb.AsPersistentCacheDir(m.ID, sharing(m.Sharing))}
	if m.Owner == nil {
		return llb.Scratch(), opts
	}
	st := llb.Scratch().File(llb.Mkdir("/cache", os.FileMode(m.Owner.Mode), llb.WithUIDGID(m.Owner.UID, m.Owner.GID)),
		llb.WithCustomName("[internal] setting cache mount permissions"))
	return st, append(opts, llb.SourcePath("/cache"))
}

// helperExec is an exec of the helper over the mounts, on an empty root, run
// every time; its result is the output directory.
func helperExec(helper string, req helperRequest, mounts []Mount, withIn bool) (llb.State, error) {
	req.Out = execOut
	if withIn {
		req.In = execIn
	}
	for i := range mounts {
		req.Mounts[i].Dir = path.Join(execMnt, strconv.Itoa(i))
	}
	arg, err := json.Marshal(req)
	if err != nil {
		return llb.State{}, err
	}
	bin := filepath.Base(helper)
	run := llb.Scratch().Run(
		llb.Args([]string{path.Join(execBin, bin), HelperCommand, string(arg)}),
		llb.AddMount(execBin, llb.Local(localBin, llb.IncludePatterns([]string{bin}), llb.SharedKeyHint(localBin)), llb.Readonly),
		// Never from BuildKit's cache, but not llb.IgnoreCache: BuildKit empties
		// the cache mounts of an exec that ignores the cache (as for --no-cache).
		llb.AddEnv("EBC_RUN", rand.Text()),
		llb.WithCustomName("[ecr-build-cache] "+req.Op+" cache mounts"),
	)
	if withIn {
		run.AddMount(execIn, llb.Local(localIn), llb.Readonly)
	}
	for i, m := range mounts {
		src, opts := cacheMount(m)
		run.AddMount(req.Mounts[i].Dir, src, opts...)
	}
	return run.AddMount(execOut, llb.Scratch()), nil
}

// runHelper solves the helper's exec and exports its output directory to
// outDir. A failure carries the end of the helper's output.
func runHelper(ctx context.Context, b Builder, helper string, req helperRequest, mounts []Mount, inDir, outDir string) (helperResult, error) {
	st, err := helperExec(helper, req, mounts, inDir != "")
	if err != nil {
		return helperResult{}, err
	}
	def, err := st.Marshal(ctx, llb.Platform(helperPlatform))
	if err != nil {
		return helperResult{}, fmt.Errorf("marshal the helper's exec: %w", err)
	}
	helperFS, err := fsutil.NewFS(filepath.Dir(helper))
	if err != nil {
		return helperResult{}, err
	}
	opt := client.SolveOpt{
		LocalMounts: map[string]fsutil.FS{localBin: helperFS},
		Exports:     []client.ExportEntry{{Type: client.ExporterLocal, OutputDir: outDir}},
	}
	if inDir != "" {
		if opt.LocalMounts[localIn], err = fsutil.NewFS(inDir); err != nil {
			return helperResult{}, err
		}
	}
	ch := make(chan *client.SolveStatus)
	logs := make(chan []byte, 1)
	go func() {
		var out bytes.Buffer
		for st := range ch {
			for _, l := range st.Logs {
				out.Write(l.Data)
			}
		}
		logs <- out.Bytes()
	}()
	_, err = b.Solve(ctx, def, opt, ch)
	out := <-logs
	if err != nil {
		if tail := lastLines(string(out), 5); tail != "" {
			err = fmt.Errorf("%w: %s", err, tail)
		}
		return helperResult{}, err
	}
	var res helperResult
	raw, err := os.ReadFile(filepath.Join(outDir, "result.json"))
	if err == nil {
		err = json.Unmarshal(raw, &res)
	}
	if err == nil && len(res.Mounts) != len(mounts) {
		err = fmt.Errorf("the helper reported %d mounts of %d", len(res.Mounts), len(mounts))
	}
	if err != nil {
		return res, fmt.Errorf("read the helper's result: %w", err)
	}
	return res, nil
}

// lastLines is the last n non-empty lines of s, joined with "; ".
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines[max(0, len(lines)-n):], "; ")
}
