package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"

	"github.com/ecr-build-cache/ecr-build-cache/internal/solve"
)

func TestReadProgress(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1, t2 := t0.Add(time.Second), t0.Add(3*time.Second)
	v := func(name string, cached bool, started, completed *time.Time) *client.Vertex {
		return &client.Vertex{Digest: digest.FromString(name), Name: name, Cached: cached, Started: started, Completed: completed}
	}
	var raw bytes.Buffer
	enc := json.NewEncoder(&raw)
	for _, st := range []client.SolveStatus{
		{Vertexes: []*client.Vertex{v("[internal] load build definition from Dockerfile", false, &t0, &t0)}},
		{Vertexes: []*client.Vertex{v("[ 1/11] FROM 127.0.0.1:5000/base:busybox", false, &t0, &t0)}},
		{Vertexes: []*client.Vertex{v("[ 2/11] RUN a", true, &t0, &t0)}},
		{Vertexes: []*client.Vertex{v("[deps  3/11] RUN b", false, &t0, nil)}},
		{Vertexes: []*client.Vertex{v("[deps  3/11] RUN b", false, &t0, &t1)}},
		{Vertexes: []*client.Vertex{v("exporting cache to registry", false, &t1, &t2)}},
		// The context, reported as it starts and again as it ends.
		{Vertexes: []*client.Vertex{v(contextVertex, false, &t0, nil)}},
		{Vertexes: []*client.Vertex{v(contextVertex, false, &t0, &t1)}},
	} {
		if err := enc.Encode(st); err != nil {
			t.Fatal(err)
		}
	}
	var smp sample
	cached, total, err := readProgress(&raw, &smp)
	if err != nil {
		t.Fatal(err)
	}
	if cached != 1 || total != 2 {
		t.Errorf("cached/total = %d/%d, want 1/2 (FROM and [internal] are not steps)", cached, total)
	}
	if len(smp.missed) != 1 || smp.missed[0] != "[deps  3/11] RUN b" {
		t.Errorf("missed = %q", smp.missed)
	}
	if smp.cacheExport != 2*time.Second || smp.stepsPhase != time.Second || smp.contextSend != time.Second {
		t.Errorf("cache export %v, steps %v, context %v; want 2s, 1s, 1s", smp.cacheExport, smp.stepsPhase, smp.contextSend)
	}
}

// TestReadContextSend reads the build context's time from the action's
// stdout: BuildKit's plain progress between the action's stop-commands lines.
func TestReadContextSend(t *testing.T) {
	for _, tc := range []struct {
		file string
		want time.Duration
	}{
		// The context's name line printed twice, its DONE once.
		{"warm.txt", 1700 * time.Millisecond},
		// Two solves (the build failed with the cache and ran again without
		// it), each sending the context; the second display numbers its
		// vertices from 1 again, so its #5 is a COPY, not the context.
		{"without-cache.txt", 3300 * time.Millisecond},
		// A Dockerfile that reads no context; a RUN step prints "DONE 9.9s".
		{"no-context.txt", 0},
	} {
		out, err := os.ReadFile(filepath.Join("testdata", "progress", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := readVertexTime(string(out), isContext)
		if err != nil || got != tc.want {
			t.Errorf("%s: context %v, %v; want %v", tc.file, got, err, tc.want)
		}
	}
	if _, err := readVertexTime("#5 [internal] load build context\n#5 DONE soon\n", isContext); err == nil || !strings.Contains(err.Error(), "DONE soon") {
		t.Errorf("an unreadable time: error %v, want one quoting the line", err)
	}
}

func TestRegLogBetween(t *testing.T) {
	log := `time="2026-11-27T00:10:55Z" level=warning msg="No HTTP secret provided"
127.0.0.1 - - [27/Nov/2026:00:13:44 +0000] "GET /v2/?bench-mark=1 HTTP/1.1" 200 2 "" "Go-http-client/1.1"
127.0.0.1 - - [27/Nov/2026:00:13:44 +0000] "HEAD /v2/app/manifests/c HTTP/1.1" 200 3532 "" "buildkit/v0.0-dev"
127.0.0.1 - - [27/Nov/2026:00:13:44 +0000] "GET /v2/app/manifests/sha256:e1 HTTP/1.1" 200 3532 "" "buildkit/v0.0-dev"
time="2026-11-27T00:13:44Z" level=error msg="response completed with error" http.response.status=404
127.0.0.1 - - [27/Nov/2026:00:13:44 +0000] "GET /v2/app/manifests/missing HTTP/1.1" 404 91 "" "go-containerregistry/v0.22.1"
127.0.0.1 - - [27/Nov/2026:00:13:44 +0000] "GET /v2/app/blobs/sha256:d7 HTTP/1.1" 200 3501 "" "buildkit/v0.0-dev"
127.0.0.1 - - [27/Nov/2026:00:13:45 +0000] "PUT /v2/app/manifests/c HTTP/1.1" 201 0 "" "buildkit/v0.0-dev"
127.0.0.1 - - [27/Nov/2026:00:13:45 +0000] "GET /v2/?bench-mark=2 HTTP/1.1" 200 2 "" "Go-http-client/1.1"
`
	path := filepath.Join(t.TempDir(), "registry.log")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := newRegLog(path, "127.0.0.1:1").between(0, int64(len(log)))
	if err != nil {
		t.Fatal(err)
	}
	want := traffic{requests: 5, getBytes: 3532 + 3501, blobGetBytes: 3501, probeRequests: 1}
	if got != want {
		t.Errorf("traffic = %+v, want %+v", got, want)
	}
}

// TestRender checks that a full report renders from samples of every kind, with
// a number where a number is due.
func TestRender(t *testing.T) {
	r := fullResults()
	out := r.render()
	for _, want := range []string{
		"MISS  matrix rebuild fully cached",
		"PASS  warm <= 5% of cold (action, app)",
		"1 of 1 runs: [deps 4/4] RUN x",
		"PASS  action/buildctl <= 1.00 on cold (realistic, paired)",
		"MISS  action/buildctl <= 0.35 on warm (realistic, paired)",
		"MISS  200-step warm <= 4x the 50-step warm (action)",
		"16.0x (20.00s vs 1.25s)",
		"realistic  partial              56.7 MB    13.3 MB",
		// The context column, in the fixture's table and next to the floor.
		"median of 5 runs (min-max); solves: builds buildkitd recorded; context: BuildKit receiving the build context\n" +
			"(new branch+change",
		"scenario          tool      time                      start-up  context  cached/total  solves  requests  GET bytes\n",
		"warm              action    350ms (300ms-400ms)           20ms    275ms           8/8       1        30    10.0 kB\n",
		"fixture    scenario                down         up    floor  context     action  x floor   buildctl  x floor  blob GET bytes action / buildctl\n",
		"realistic  warm                 56.7 MB    13.3 MB    136ms    275ms      350ms      2.6      350ms      2.6",
		"its share of the warm build (medians): app action 0.000%, buildctl 0.000%; steps action 0.000%, buildctl 0.000%; realistic action 78.6%, buildctl 78.6%;",
		"both tools spend most of the warm build sending the build context to the pruned builder: buildctl 275ms (78.6% of its time), the action 275ms (78.6%); " +
			"what a warm build could save beyond that is the cache export (buildctl 40ms) and the image export (5ms)\n",
		"71.28%  github.com/moby/buildkit/worker/base.(*Worker).FromRemote",
		"== compression: zstd time / default time, realistic fixture (medians); default: the action's, gzip for the image and zstd for the layers only its cache holds; buildctl's, gzip for both",
		"cold              action       10.50s    10.50s   1.000",
		"image bytes: default (gzip) 61.0 MB, zstd 56.0 MB",
		"buildkitd's CPU time during the warm builds: 10.00s for 200 steps, 625ms for 50 (16.0x); its profile puts 71.28% of the samples in",
		"PASS  action solves per build = 1 on cold, warm, partial, new branch+change (realistic) cold 1, warm 1, partial 1, new branch+change 1",
		"== fallbacks: per action run",
		"fallbacks across ",
		// The real service's section, its floors and its targets.
		"== pushgateway (github.com/prometheus/pushgateway@v1.11.5, 33 modules): paired ratios",
		"scenario          action/bk   a+mounts/bk  buildctl    floor   (bytes compile)  floor/bk   context  compile action / action+mounts / buildctl\n" +
			"cold                  0.984         1.016    61.00s   50.05s     50ms   50.00s     0.820       0ms  50.00s / 50.00s / 50.00s\n",
		"partial               0.982         0.143    56.00s    4.05s     50ms    4.00s     0.072       0ms  50.00s / 4.00s / 50.00s\n",
		"post-merge            0.036         0.039    56.00s     50ms     50ms      0ms     0.001       0ms  0ms / 0ms / 50.00s\n",
		"partial               8.00s    55.00s     0.145    10.0 kB    10.0 kB  3 builds (1.00s + 5.00s + 2.00s)\n",
		"PASS  action/buildctl <= 0.10 on post-merge (pushgateway, paired)        0.036 (with cache mounts 0.039; floor 0.001)\n",
		"PASS  action+mounts/buildctl <= 0.30 on partial (pushgateway, paired)    0.143 (floor 0.072)\n",
		"PASS  warm with cache mounts <= 1.1x warm without (pushgateway, paired)  1.10x (1.10s vs 1.00s)\n",
		"PASS  no export-solve on changed builds (partial, new branch+change; realistic-nogit) 0 of 4 action runs\n",
		"PASS  no export-solve on changed builds (partial; realistic-generated)   0 of 2 action runs\n",
		// The fingerprint next to the context transfer.
		"fixture              fingerprint              context                  fp / context\n" +
			"realistic            100ms (90ms-110ms)       0ms (0ms-300ms)                     -\n" +
			"realistic-nogit      400ms (400ms-400ms)      0ms (0ms-0ms)                       -\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "warm <= 5% of cold (action, realistic-zstd)") || strings.Contains(out, "(action, pushgateway)\n") {
		t.Errorf("report holds the zstd comparison to targets:\n%s", out)
	}
	if strings.Contains(out, "NaN") {
		t.Errorf("report shows NaN:\n%s", out)
	}
	md := markdown(machine{buildkit: "v0.34.2"}, r, out)
	if strings.Contains(md, "%!") || !strings.Contains(md, "## Finding: warm builds grow") || !strings.Contains(md, out) ||
		!strings.Contains(md, "median of 2 runs with min-max (the realistic fixture: 5 runs") || !strings.Contains(md, "realistic-zstd, a comparison without targets: 2)") {
		t.Errorf("BENCHMARKS.md does not render:\n%s", md)
	}
}

// TestRenderPartial checks that a run of some parts reports only those.
func TestRenderPartial(t *testing.T) {
	r := fullResults()
	r.parts = map[string]bool{fxRealistic: true}
	// The fallbacks section counts every action run recorded: in a run of
	// realistic alone, only realistic's builds ran the action.
	for k, ss := range r.samples {
		for i := range ss {
			if k.fixture != fxRealistic {
				ss[i].actionRuns = nil
			}
		}
	}
	out := r.render()
	for _, absent := range []string{"== app:", "== matrix:", "== scale:", "(action, app)", "matrix rebuild"} {
		if strings.Contains(out, absent) {
			t.Errorf("report of realistic alone shows %q:\n%s", absent, out)
		}
	}
	if !strings.Contains(out, "== realistic:") || !strings.Contains(out, "fallbacks across 10 action runs:") || strings.Contains(out, "NaN") {
		t.Errorf("report of realistic alone:\n%s", out)
	}
}

// fullResults are samples of every kind a full run records.
func fullResults() *results {
	parts, _ := selectParts("")
	r := &results{runs: 2, parts: parts, samples: map[key][]sample{}, imageBytes: map[string]int64{"app": 106e6, "steps": 1.1e6, fxRealistic: 61e6, "realistic-zstd": 56e6,
		fxService: 8e6, fxOutsideGit: 61e6, fxGenerated: 61e6},
		scopes: map[string][][]sample{}, scopeRefs: map[string][]string{}, bandwidth: bandwidth{up: 150e6, down: 1.2e9, size: bandwidthBlob},
		fingerprints: map[string][]time.Duration{fxRealistic: {90 * time.Millisecond, 100 * time.Millisecond, 110 * time.Millisecond}, fxOutsideGit: {400 * time.Millisecond}}}
	s := func(sec float64, cached, total int) sample {
		return sample{took: time.Duration(sec * float64(time.Second)), daemonCPU: time.Duration(sec * float64(time.Second) / 2), startup: 20 * time.Millisecond, cached: cached, total: total,
			traffic: traffic{requests: 30, getBytes: 10e3}, floor: &floorBytes{down: 56683641, up: 13332438}}
	}
	for _, f := range fixtures {
		for _, tool := range f.tools {
			r.samples[key{f.name, scCold, tool}] = []sample{s(10, 0, 8), s(11, 0, 8)}
			r.samples[key{f.name, scWarm, tool}] = []sample{s(0.3, 8, 8), s(0.4, 8, 8)}
			r.samples[key{f.name, scNewBranch, tool}] = []sample{s(0.3, 8, 8), s(9, 0, 8)}
			r.samples[key{f.name, scBranchChanged, tool}] = []sample{s(2, 5, 8), s(2, 5, 8)}
			r.samples[key{f.name, scPartial, tool}] = []sample{s(1, 5, 8), s(1.2, 5, 8)}
		}
	}
	// The real service: buildctl compiles everything on every changed
	// build; the action after a merge compiles nothing; with cache mounts a
	// changed build compiles the main package only.
	svc := func(sec, compileSec float64, cached int) sample {
		smp := s(sec, cached, 4)
		smp.compile = time.Duration(compileSec * float64(time.Second))
		smp.floor = &floorBytes{down: 12e6, up: 6e6}
		return smp
	}
	for sc, bySetup := range map[string][3]sample{
		scCold:          {svc(60, 50, 0), svc(62, 50, 0), svc(61, 50, 0)},
		scWarm:          {svc(1, 0, 4), svc(1.1, 0, 4), svc(1, 0, 4)},
		scPartial:       {svc(55, 50, 3), svc(8, 4, 3), svc(56, 50, 3)},
		scBranchChanged: {svc(55, 50, 3), svc(8, 4, 3), svc(56, 50, 3)},
		scPostMerge:     {svc(2, 0, 4), svc(2.2, 0, 4), svc(56, 50, 3)},
	} {
		for i, tool := range []string{toolAction, toolMounts, toolBuildctl} {
			r.samples[key{fxService, sc, tool}] = []sample{bySetup[i], bySetup[i]}
		}
	}
	for _, tool := range tools {
		g := []sample{s(0.5, 8, 8), s(0.5, 8, 8), s(0.5, 4, 8), s(0.5, 8, 8)}
		r.addGroup(key{"app", "matrix first", tool}, g)
		r.addGroup(key{"app", "matrix rebuild", tool}, g)
		r.scopes[tool] = append(r.scopes[tool], g)
	}
	// Receiving the context is most of a realistic warm build.
	for _, tool := range []string{toolAction, toolBuildctl} {
		for i, d := range []time.Duration{250 * time.Millisecond, 300 * time.Millisecond} {
			w := &r.samples[key{fxRealistic, scWarm, tool}][i]
			w.contextSend, w.cacheExport, w.imageExport = d, 40*time.Millisecond, 5*time.Millisecond
		}
	}
	for _, n := range importCounts {
		r.samples[key{"app", fmt.Sprintf("%d refs", n), toolBuildctl}] = []sample{{missed: []string{"[deps 4/4] RUN x"}}}
		r.samples[key{"app", fmt.Sprintf("%d refs", n), toolAction}] = []sample{s(0.2, 8, 8)}
	}
	for _, n := range stepCounts {
		r.samples[genKey(n, scCold)] = []sample{s(float64(n)/5, 0, n)}
		r.samples[genKey(n, scWarm)] = []sample{s(float64(n*n)/2000, n, n)}
	}
	for _, sc := range []string{scCold, scWarm} {
		r.samples[key{"steps", sc + ", cache-mode=min", toolAction}] = []sample{s(1, 0, 54)}
	}
	for k, ss := range r.samples {
		for i := range ss {
			if k.tool == toolMounts {
				ss[i].solves = []time.Duration{time.Second, 5 * time.Second, 2 * time.Second}
				ss[i].actionRuns = []actionRun{{cacheExport: "exported"}}
			}
			if k.tool == toolAction {
				ss[i].solves = []time.Duration{time.Second}
				ss[i].actionRuns = []actionRun{{cacheExport: "exported"}}
			}
		}
	}
	top, err := os.ReadFile(filepath.Join("testdata", "pprof-top.txt"))
	if err != nil {
		panic(err)
	}
	r.profile = parseTop(string(top))
	return r
}

func TestParseTop(t *testing.T) {
	top, err := os.ReadFile(filepath.Join("testdata", "pprof-top.txt"))
	if err != nil {
		t.Fatal(err)
	}
	p := parseTop(string(top))
	if p.header != "Duration: 75.03s, Total samples = 60.31s (80.39%)" {
		t.Errorf("header = %q", p.header)
	}
	if p.fromRemote != "71.28%" {
		t.Errorf("FromRemote's share = %q, want 71.28%%", p.fromRemote)
	}
	if len(p.top) != profileTop {
		t.Fatalf("%d functions, want %d", len(p.top), profileTop)
	}
	if p.top[0].name != profileKey || p.top[0].cum != "71.28%" {
		t.Errorf("first function %+v, want FromRemote at 71.28%%", p.top[0])
	}
	for _, l := range p.top {
		if strings.HasPrefix(l.name, "runtime.") || strings.Contains(l.name, "errgroup") {
			t.Errorf("listed %q, which is not BuildKit's", l.name)
		}
	}
}

func TestSelectParts(t *testing.T) {
	for _, tc := range []struct {
		only string
		want []string
		err  string
	}{
		{only: "", want: partNames()},
		{only: "realistic, scale", want: []string{"realistic", "scale"}},
		{only: "refs", err: "refs imports the matrix scopes' caches: add matrix"},
		{only: "realistc,scal", err: `unknown part "realistc"`},
	} {
		got, err := selectParts(tc.only)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("-only %q: error %v, want one with %q", tc.only, err, tc.err)
			}
			if tc.only == "realistc,scal" && !strings.Contains(err.Error(), `unknown part "scal"`) {
				t.Errorf("-only %q: error %v does not name every unknown part", tc.only, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("-only %q: %v", tc.only, err)
		}
		if len(got) != len(tc.want) {
			t.Errorf("-only %q: parts %v, want %v", tc.only, got, tc.want)
		}
		for _, p := range tc.want {
			if !got[p] {
				t.Errorf("-only %q: %s not selected", tc.only, p)
			}
		}
	}
}

// TestFloorOf reads a real main cache, the cache and image a partial build
// left (one source file changed; buildctl, the realistic fixture) and the base
// image; the partial build had to download the final stage's base (busybox and
// the dependency layer) and upload three new layers.
func TestFloorOf(t *testing.T) {
	read := func(name string) refState {
		t.Helper()
		m, err := os.ReadFile(filepath.Join("testdata", "floor", name+".manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := stateOf(m, func() ([]byte, error) { return os.ReadFile(filepath.Join("testdata", "floor", name+".config.json")) })
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	mainCache, partialCache, image, base := read("cache-main"), read("cache-partial"), read("image-partial"), read("base")
	none := refState{}
	for _, tc := range []struct {
		name             string
		imported         []refState
		image, exported  refState
		wantDown, wantUp int64
	}{
		// Every step ran on the base image; every layer but the base's is new.
		{name: "cold", imported: nil, image: none, exported: mainCache, wantDown: 1067831, wantUp: 124558620},
		// Nothing ran, nothing is new: the export was skipped.
		{name: "warm", imported: []refState{mainCache}, image: none, exported: mainCache},
		{name: "partial", imported: []refState{mainCache}, image: image, exported: partialCache, wantDown: 56683641, wantUp: 13332438},
	} {
		got := floorOf(tc.imported, base, tc.image, tc.exported)
		if got.down != tc.wantDown || got.up != tc.wantUp {
			t.Errorf("%s: floor down %d up %d, want %d and %d", tc.name, got.down, got.up, tc.wantDown, tc.wantUp)
		}
	}
}

// TestGenerateRealistic checks that the realistic fixture is the same bytes on
// every run, at the size the issue describes, that the partial and new-branch
// contexts each change one different source file, and that each is committed.
func TestGenerateRealistic(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and commits 2 x 8,000 files (a minute or more on 2 cores); runs in make test (skipped under -short)")
	}
	a, err := generateRealistic(t.TempDir(), "run 1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := generateRealistic(t.TempDir(), "run 1")
	if err != nil {
		t.Fatal(err)
	}
	files := func(dir string) map[string]string {
		m := map[string]string{}
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() && d.Name() == ".git" {
				return filepath.SkipDir // its commits differ in time; the tree is the same (TestCommitContext)
			}
			if err != nil || d.IsDir() {
				return err
			}
			c, err := os.ReadFile(p)
			m[strings.TrimPrefix(p, dir+"/")] = string(c)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	base := files(a.base)
	if diff := differing(base, files(b.base)); len(diff) != 0 {
		t.Errorf("two generations differ in %v", diff)
	}
	src := 0
	for p := range base {
		if strings.HasPrefix(p, "src/") {
			src++
		}
	}
	if src != 8000 {
		t.Errorf("%d source files, want 8,000", src)
	}
	if n := strings.Count(base["deps.lock"], "\n"); n != 1200 {
		t.Errorf("deps.lock locks %d packages, want 1,200", n)
	}
	if d := differing(base, files(a.partial)); len(d) != 1 || d[0] != partialFile {
		t.Errorf("partial changes %v, want [%s]", d, partialFile)
	}
	if d := differing(base, files(a.branch)); len(d) != 1 || d[0] != branchFile {
		t.Errorf("new branch changes %v, want [%s]", d, branchFile)
	}
	// Each context is a checkout of its files; the base is one tree on every
	// run, a changed context another.
	tree := func(dir string) string { return gitOut(t, dir, "rev-parse", "HEAD:./") }
	for _, d := range []string{a.base, a.partial, a.branch, b.base} {
		checkedOut(t, d)
	}
	if tree(a.base) != tree(b.base) || tree(a.partial) == tree(a.base) || tree(a.branch) == tree(a.base) {
		t.Errorf("trees: base %s and %s, partial %s, branch %s; want the bases alike, the others not",
			tree(a.base), tree(b.base), tree(a.partial), tree(a.branch))
	}
}

func differing(a, b map[string]string) []string {
	var d []string
	for p, c := range a {
		if b[p] != c {
			d = append(d, p)
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			d = append(d, p)
		}
	}
	slices.Sort(d)
	return d
}

// buildctl compresses the image and the cache as the action's compression
// input does: both exporters, or neither for the default.
func TestExportFlagsCompressBoth(t *testing.T) {
	for _, tc := range []struct {
		fixture string
		want    int // exporters with compression=zstd
	}{{fxRealistic, 0}, {"realistic-zstd", 2}} {
		f := fixtureNamed(tc.fixture)
		j := job{tool: toolBuildctl, repo: "bench/x", branch: "main", compression: f.compression}
		flags := j.exportFlags("127.0.0.1:5000")
		if got := strings.Count(strings.Join(flags, " "), ",compression=zstd"); got != tc.want || len(flags) != 4 {
			t.Errorf("%s: %q sets compression=zstd on %d exporters, want %d", tc.fixture, flags, got, tc.want)
		}
		for i, flag := range []string{"--output", "--export-cache"} {
			if flags[2*i] != flag {
				t.Errorf("%s: flags %q, want %s at %d", tc.fixture, flags, flag, 2*i)
			}
		}
	}
}

// TestCommitContext checks that a fixture's context is a git checkout of
// exactly its files, that a change is committed as a push would be, that the
// same content has the same tree anywhere (the action's fingerprint), and that
// .git is kept out of the build context.
func TestCommitContext(t *testing.T) {
	clean := func(dir string) { t.Helper(); checkedOut(t, dir) }
	tree := func(dir string) string { t.Helper(); return gitOut(t, dir, "rev-parse", "HEAD:./") }
	write := func(dir, name, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		write(d, "Dockerfile", "FROM scratch\nCOPY . .\n")
		write(d, "src/late.txt", "late\n")
		if err := commitContext(d, "fixture"); err != nil {
			t.Fatal(err)
		}
		clean(d)
	}
	if ta, tb := tree(a), tree(b); ta != tb {
		t.Errorf("the same files in two directories have trees %s and %s, want one", ta, tb)
	}
	if got := gitOut(t, a, "show", "HEAD:.dockerignore"); got != ".git" {
		t.Errorf("committed .dockerignore is %q, want .git", got)
	}
	before := tree(a)
	write(a, "src/late.txt", "late\nchanged in run 1\n")
	if err := commitContext(a, "change"); err != nil {
		t.Fatal(err)
	}
	clean(a)
	if tree(a) == before {
		t.Errorf("HEAD's tree is still %s after a change was committed", before)
	}
	if got := gitOut(t, a, "show", "HEAD:src/late.txt"); got != "late\nchanged in run 1" {
		t.Errorf("HEAD holds src/late.txt %q, not the changed file", got)
	}

	// A fixture's own .dockerignore keeps its patterns and gets .git appended.
	write(c, ".dockerignore", "node_modules")
	if err := commitContext(c, "fixture"); err != nil {
		t.Fatal(err)
	}
	clean(c)
	if got := gitOut(t, c, "show", "HEAD:.dockerignore"); got != "node_modules\n.git" {
		t.Errorf("committed .dockerignore is %q, want node_modules then .git", got)
	}

	// The committed fixtures: each run's contexts are checkouts; the base is
	// the same tree on every run, the changed contexts are not.
	runs := make([]contexts, 2)
	for i := range runs {
		var err error
		if runs[i], err = committed("app")(t.TempDir(), fmt.Sprintf("run %d", i+1)); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{runs[i].base, runs[i].partial, runs[i].other} {
			clean(d)
		}
	}
	if tree(runs[0].base) != tree(runs[1].base) {
		t.Error("app's base context has a different tree on each run")
	}
	if tree(runs[0].partial) == tree(runs[1].partial) || tree(runs[0].partial) == tree(runs[0].base) || tree(runs[0].other) == tree(runs[0].base) {
		t.Error("app's changed contexts share a tree with the base or with another run's")
	}
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %v in %s: %v\n%s", args, dir, err, out)
	}
	return strings.TrimSpace(string(out))
}

// checkedOut checks that dir's HEAD commit holds exactly its files.
func checkedOut(t *testing.T, dir string) {
	t.Helper()
	if st := gitOut(t, dir, "status", "--porcelain", "--ignored"); st != "" {
		t.Errorf("%s: HEAD does not hold exactly the files: git status shows\n%s", dir, st)
	}
}

func TestReadActionRun(t *testing.T) {
	if _, err := readActionRun(map[string]string{"cached-steps": "3", "total-steps": "3"}); err == nil || !strings.Contains(err.Error(), "cache-export") {
		t.Errorf("outputs without cache-export: error %v, want one naming cache-export", err)
	}
	for _, tc := range []struct {
		fallbacks string
		want      []string
	}{{"", nil}, {"export-solve", []string{"export-solve"}}, {"image-retry, brand-new", []string{"image-retry", "brand-new"}}} {
		run, err := readActionRun(map[string]string{"cache-export": "kept", "fallbacks": tc.fallbacks})
		if err != nil || run.cacheExport != "kept" || !slices.Equal(run.fallbacks, tc.want) {
			t.Errorf("fallbacks %q: %+v, %v; want kept, %q", tc.fallbacks, run, err, tc.want)
		}
	}
}

// TestRenderFallbacks checks the fallbacks section and the one-solve target:
// counts per fixture and scenario in the order they ran, a matrix group's
// every run, an unknown fallback under its own name, and the totals.
func TestRenderFallbacks(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &results{runs: 3, parts: map[string]bool{fxRealistic: true, "matrix": true}, samples: map[key][]sample{}, imageBytes: map[string]int64{}}
	at := 0
	add := func(k key, solves int, exp string, fallbacks ...string) {
		at++
		r.samples[k] = append(r.samples[k], sample{at: t0.Add(time.Duration(at) * time.Minute), solves: make([]time.Duration, solves),
			actionRuns: []actionRun{{cacheExport: exp, fallbacks: fallbacks}}})
	}
	for range 3 {
		add(key{fxRealistic, scCold, toolAction}, 1, "exported")
		r.samples[key{fxRealistic, scCold, toolBuildctl}] = append(r.samples[key{fxRealistic, scCold, toolBuildctl}], sample{solves: make([]time.Duration, 1)})
	}
	add(key{fxRealistic, scWarm, toolAction}, 1, "kept")
	add(key{fxRealistic, scWarm, toolAction}, 1, "kept")
	add(key{fxRealistic, scWarm, toolAction}, 1, "tagged")
	add(key{fxRealistic, scBranchChanged, toolAction}, 1, "exported")
	add(key{fxRealistic, scPartial, toolAction}, 1, "exported")
	add(key{fxRealistic, scPartial, toolAction}, 2, "exported", "export-solve", "brand-new")
	add(key{fxRealistic, scPartial, toolAction}, 1, "exported")
	g := make([]sample, len(scopes))
	for i := range g {
		g[i] = sample{at: t0.Add(time.Hour), actionRuns: []actionRun{{cacheExport: "kept"}}}
	}
	g[2].actionRuns[0] = actionRun{cacheExport: "failed", fallbacks: []string{"without-cache"}}
	r.addGroup(key{"app", "matrix rebuild", toolAction}, g)
	r.mountSamples = map[key][]sample{{"gobuild", "cold", toolMounts}: {{at: t0.Add(2 * time.Hour), actionRuns: []actionRun{{cacheExport: "exported"}}}}}

	out := r.render()
	for _, want := range []string{
		"realistic      cold                 action           3  exported 3; export-solve 0/3, image-retry 0/3, image-after-timeout 0/3, without-cache 0/3\n" +
			"realistic      warm                 action           3  kept 2, tagged 1; export-solve 0/3,",
		"realistic      partial              action           3  exported 3; export-solve 1/3, image-retry 0/3, image-after-timeout 0/3, without-cache 0/3, brand-new 1/3\n" +
			"app            matrix rebuild       action           4  kept 3, failed 1; export-solve 0/4, image-retry 0/4, image-after-timeout 0/4, without-cache 1/4\n" +
			"gobuild        cold                 action+mounts    1  exported 1;",
		"fallbacks across 15 action runs: export-solve 1, image-retry 0, image-after-timeout 0, without-cache 1, brand-new 1\n",
		"cache-export across 15 action runs: exported 8, kept 5, tagged 1, failed 1\n",
		"MISS  action solves per build = 1 on cold, warm, partial, new branch+change (realistic) cold 1, warm 1, partial 1-2, new branch+change 1",
		"partial run 2: 2 solves, cache-export exported, fallbacks export-solve,brand-new",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if nb, pa := strings.Index(out, "realistic      new branch+change    action           1  exported 1;"), strings.Index(out, "realistic      partial"); nb < 0 || nb > pa {
		t.Errorf("rows are not in the order they ran:\n%s", out)
	}
}

// TestRealisticVariants checks the export skip's fixtures: outside git, the
// realistic files in plain directories; with a generated file, one HEAD and
// two contexts. The action's fingerprint tells each changed context from its
// base, which is what lets a changed build export in its one solve.
func TestRealisticVariants(t *testing.T) {
	if testing.Short() {
		t.Skip("writes the realistic fixture's 8,000 files twice and fingerprints them; runs in make test (skipped under -short)")
	}
	plain, err := realisticOutsideGit(t.TempDir(), "run 1")
	if err != nil {
		t.Fatal(err)
	}
	gen, err := realisticGenerated(t.TempDir(), "run 1")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{plain.base, plain.partial, plain.branch} {
		if _, err := os.Stat(filepath.Join(d, ".git")); !os.IsNotExist(err) {
			t.Errorf("%s: .git exists (%v), want a plain directory", d, err)
		}
	}
	if gitOut(t, gen.base, "rev-parse", "HEAD:./") != gitOut(t, gen.partial, "rev-parse", "HEAD:./") {
		t.Error("the generated file's contexts hold different trees; want one HEAD")
	}
	for _, d := range []string{gen.base, gen.partial} {
		if st := gitOut(t, d, "status", "--porcelain", "--ignored"); st != "!! src/gen/" {
			t.Errorf("%s: git status %q, want only src/gen/ ignored", d, st)
		}
	}
	fp := func(dir string) string {
		got, err := solve.Fingerprint(t.Context(), solve.Request{ContextDir: dir, Dockerfile: filepath.Join(dir, "Dockerfile")})
		if err != nil || got == "" {
			t.Fatalf("fingerprint %s: %q, %v", dir, got, err)
		}
		return got
	}
	for _, c := range []contexts{plain, gen} {
		b := fp(c.base)
		for _, d := range []string{c.partial, c.branch} {
			if d != "" && fp(d) == b {
				t.Errorf("%s has the fingerprint of %s", d, c.base)
			}
		}
	}
}
