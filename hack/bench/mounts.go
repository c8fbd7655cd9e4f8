package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cachemount"
	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// The cache mounts study builds the gobuild fixture three ways: the action
// keeping its cache mounts (cache-mounts: auto), the action without, and
// buildctl (which keeps no mounts either).
const toolMounts = "action+mounts"

var mountTools = []string{toolMounts, toolAction, toolBuildctl}

// mountsResults is what the cache mounts study measured.
type mountsResults struct {
	runs     int
	samples  map[key][]sample
	uploaded map[key][]int64 // bytes of mounts blobs new in the registry after the build
	artifact int64           // the mounts artifact's blobs after the cold build
	contents int64           // the mounts' contents (uncompressed tar) after the cold build
	goVer    string
	date     string
	load     [2]string
}

// mounts runs the study: per tool a cold and a warm build, then runs partial
// rebuilds (one line of version.go changed), each on a pruned builder.
func (b *bench) mounts(ctx context.Context, runs int) (*mountsResults, error) {
	res := &mountsResults{runs: runs, samples: map[key][]sample{}, uploaded: map[key][]int64{},
		date: time.Now().UTC().Format("2006-01-02 15:04 MST"), load: [2]string{loadavg()}}
	gobase, goVer, err := b.goBase(ctx)
	if err != nil {
		return nil, err
	}
	res.goVer = goVer
	dir := filepath.Join(b.dir, "gobuild")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(teststack.RepoRoot(), "hack", "bench", "fixtures", "gobuild"))); err != nil {
		return nil, fmt.Errorf("copy fixture gobuild: %w", err)
	}
	if err := commitContext(dir, "fixture"); err != nil {
		return nil, err
	}
	jobFor := func(tool string) job {
		j := job{tool: tool, repo: "bench/gobuild-" + strings.ReplaceAll(tool, "+", "-"), branch: "main", context: dir,
			args: map[string]string{"GOBASE": gobase}}
		if tool == toolMounts {
			j = j.withMounts()
		}
		return j
	}
	measure := func(tool, scenario string) error {
		j := jobFor(tool)
		mref := fmt.Sprintf("%s/%s:%s", b.s.Registry, j.repo, cacheref.MountsTag(cacheref.DefaultPrefix, cacheref.BranchKey(j.branch), "", ""))
		before, _, err := mountsBlobs(mref)
		if err != nil {
			return err
		}
		smp, err := b.measure(ctx, j)
		if err != nil {
			return err
		}
		after, contents, err := mountsBlobs(mref)
		if err != nil {
			return err
		}
		var up int64
		for d, n := range after {
			if _, ok := before[d]; !ok {
				up += n
			}
		}
		k := key{"gobuild", scenario, tool}
		res.samples[k] = append(res.samples[k], smp)
		res.uploaded[k] = append(res.uploaded[k], up)
		if tool == toolMounts && scenario == "cold" {
			res.contents = contents
			for _, n := range after {
				res.artifact += n
			}
		}
		b.logf("gobuild %-8s %-14s %s  mounts uploaded %s", scenario, tool, smp, fmtBytes(float64(up)))
		return nil
	}
	for _, tool := range mountTools {
		for _, sc := range []string{"cold", "warm"} {
			if err := measure(tool, sc); err != nil {
				return nil, err
			}
		}
	}
	for r := 1; r <= runs; r++ {
		v := fmt.Sprintf("package main\n\n// version is what the partial rebuild changes: one line of one file.\nconst version = \"1.0.%d\"\n", r)
		if err := os.WriteFile(filepath.Join(dir, "version.go"), []byte(v), 0o644); err != nil {
			return nil, err
		}
		if err := commitContext(dir, fmt.Sprintf("version 1.0.%d", r)); err != nil {
			return nil, err
		}
		for _, tool := range rotate(mountTools, r-1) {
			if err := measure(tool, "partial"); err != nil {
				return nil, err
			}
		}
	}
	res.load[1] = loadavg()
	return res, nil
}

// mountsBlobs lists the blobs of the mounts artifact at ref (none when it does not
// exist) and the size of the mounts' contents it records.
func mountsBlobs(ref string) (map[v1.Hash]int64, int64, error) {
	out := map[v1.Hash]int64{}
	d, found, err := teststack.Manifest(ref, nil)
	if err != nil || !found {
		return out, 0, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(d.Manifest))
	if err != nil {
		return nil, 0, err
	}
	var contents int64
	for _, l := range m.Layers {
		out[l.Digest] = l.Size
		n, err := strconv.ParseInt(l.Annotations[cachemount.AnnotationSize], 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: layer %s: %s: %w", ref, l.Digest, cachemount.AnnotationSize, err)
		}
		contents += n
	}
	return out, contents, nil
}

// goBase is pushGoBase's image, pushed once per benchmark run.
func (b *bench) goBase(ctx context.Context) (ref, version string, err error) {
	if b.gobase == "" {
		if b.gobase, b.goVersion, err = b.pushGoBase(ctx); err != nil {
			return "", "", err
		}
	}
	return b.gobase, b.goVersion, nil
}

// pushGoBase builds a base image holding this machine's Go toolchain on the
// stack's busybox base and pushes it as <registry>/base:go (there is no Docker
// Hub here), with buildctl so the study does not depend on the code under test.
func (b *bench) pushGoBase(ctx context.Context) (ref, version string, err error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOROOT", "GOVERSION").Output()
	if err != nil {
		return "", "", fmt.Errorf("go env: %w", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return "", "", fmt.Errorf("go env GOROOT GOVERSION: %q", out)
	}
	goroot, version := f[0], f[1]
	dir := filepath.Join(b.dir, "gobase")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	df := `ARG BASE
FROM ${BASE}
COPY bin /usr/local/go/bin
COPY pkg /usr/local/go/pkg
COPY src /usr/local/go/src
COPY go.env VERSION /usr/local/go/
RUN mkdir -p /tmp && chmod 1777 /tmp
ENV PATH=/usr/local/go/bin:/bin HOME=/root CGO_ENABLED=0 GOTOOLCHAIN=local GOPROXY=off
`
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return "", "", err
	}
	ref = b.s.Registry + "/base:go"
	b.logf("gobuild: pushing %s with %s from %s", ref, version, goroot)
	cmd := exec.CommandContext(ctx, b.s.Tool("buildctl"), "--addr", b.s.BuildkitAddr, "build",
		"--frontend", "dockerfile.v0", "--local", "context="+goroot, "--local", "dockerfile="+dir,
		"--opt", "build-arg:BASE="+b.s.BaseImage,
		"--output", "type=image,name="+ref+",push=true,registry.insecure=true")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("push the Go base image: %w\n%s", err, teststack.Tail(string(out), 4000))
	}
	return ref, version, nil
}

func (r *mountsResults) med(k key, f func(sample) float64) float64 {
	var v []float64
	for _, s := range r.samples[k] {
		v = append(v, f(s))
	}
	return median(v)
}

func (r *mountsResults) medUploaded(k key) float64 {
	var v []float64
	for _, n := range r.uploaded[k] {
		v = append(v, float64(n))
	}
	return median(v)
}

// render is the study's printed report.
func (r *mountsResults) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "== cache mounts: gobuild (net/http, html/template service; RUN --mount=type=cache,target=/root/.cache/go-build go build), %s base\n", r.goVer)
	fmt.Fprintf(&b, "   pruned builder before every build; cold and warm once, partial (one line of version.go changed) median of %d\n", r.runs)
	fmt.Fprintf(&b, "%-9s %-14s %9s %13s %9s %10s %16s\n", "scenario", "tool", "time", "cached/total", "requests", "GET bytes", "mounts uploaded")
	for _, sc := range []string{"cold", "warm", "partial"} {
		for _, tool := range mountTools {
			k := key{"gobuild", sc, tool}
			steps := "-"
			if ss := r.samples[k]; len(ss) > 0 {
				steps = fmt.Sprintf("%d/%d", ss[0].cached, ss[0].total)
			}
			up := "-"
			if tool == toolMounts {
				up = fmtBytes(r.medUploaded(k))
			}
			fmt.Fprintf(&b, "%-9s %-14s %9s %13s %9s %10s %16s\n", sc, tool, fmtSec(r.med(k, took)), steps,
				fmtNum(r.med(k, requests)), fmtBytes(r.med(k, getBytes)), up)
		}
	}
	with, without, bk := r.med(key{"gobuild", "partial", toolMounts}, took), r.med(key{"gobuild", "partial", toolAction}, took), r.med(key{"gobuild", "partial", toolBuildctl}, took)
	warmWith, warmWithout := r.med(key{"gobuild", "warm", toolMounts}, took), r.med(key{"gobuild", "warm", toolAction}, took)
	fmt.Fprintf(&b, "mounts artifact after the cold build: %s compressed, %s of Go build cache\n", fmtBytes(float64(r.artifact)), fmtBytes(float64(r.contents)))
	fmt.Fprintf(&b, "partial rebuild: %s with cache mounts, %s without (buildctl %s): %s saved, %s of the time without\n",
		fmtSec(with), fmtSec(without), fmtSec(bk), fmtSec(without-with), fmtPct(with/without))
	fmt.Fprintf(&b, "  bytes moved for it: %s downloaded (layer cache and mounts) and %s of mounts uploaded, against %s downloaded without\n",
		fmtBytes(r.med(key{"gobuild", "partial", toolMounts}, getBytes)), fmtBytes(r.medUploaded(key{"gobuild", "partial", toolMounts})),
		fmtBytes(r.med(key{"gobuild", "partial", toolAction}, getBytes)))
	fmt.Fprintf(&b, "warm build (every step cached): %s with cache mounts, %s without (%s): a build expected fully cached does not seed them\n",
		fmtSec(warmWith), fmtSec(warmWithout), fmtPct(warmWith/warmWithout))
	pass := "MISS"
	if with <= 0.5*without {
		pass = "PASS"
	}
	fmt.Fprintf(&b, "%s  partial rebuild with cache mounts <= 50%% of without (action)  %s\n", pass, fmtPct(with/without))
	return b.String()
}

// mountsHeading starts the study's section of BENCHMARKS.md.
const mountsHeading = "## Cache mounts"

// markdown is the study's section of BENCHMARKS.md; "" when it did not run.
func (r *mountsResults) markdown() string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf(`
%s

Written by `+"`make bench`"+` (or `+"`go run ./hack/bench -only mounts -out BENCHMARKS.md`"+`, which replaces this section only) on %s;
load average at start %s, at end %s.

- Fixture: hack/bench/fixtures/gobuild, a Go service whose build compiles much of the standard library, on a
  base image holding this machine's Go toolchain (built from `+"`go env GOROOT`"+` on the busybox base, pushed to the
  local registry once per benchmark run). The build cache is a `+"`RUN --mount=type=cache`"+`.
- Tools: **action+mounts** is the action with `+"`cache-mounts: auto`"+`; **action** the action without; **buildctl**
  as in the main study (keeps no mounts). Each build runs on a pruned builder, as on a fresh runner.
- Scenarios: **cold** (empty repository), **warm** (the same again), **partial** (one line of version.go changed:
  the main package is compiled again and linked). Mounts uploaded: bytes of mounts blobs new in the registry after
  the build; GET bytes: the registry's access log.

`+"```text\n%s```\n", mountsHeading, r.date, r.load[0], r.load[1], r.render())
}

// spliceSection replaces the section of the report at path that starts with
// heading (up to the next "## " heading), or adds it at the end.
func spliceSection(path, heading, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	doc, rest := string(old), ""
	if i := strings.Index(doc, "\n"+heading+"\n"); i >= 0 {
		doc, rest = doc[:i], doc[i+1:]
		if j := strings.Index(rest, "\n## "); j >= 0 {
			rest = rest[j:]
		} else {
			rest = ""
		}
	}
	return os.WriteFile(path, []byte(strings.TrimRight(doc, "\n")+"\n"+section+rest), 0o644)
}

// withMounts is j run by the action with cache-mounts: auto. The bench's
// buildkitd is not one the action started, so the Go build cache is named to
// be saved from it (cache-mounts-shared-builder).
func (j job) withMounts() job {
	j.tool, j.cacheMounts, j.sharedMounts = toolAction, "auto", "/root/.cache/go-build"
	return j
}
