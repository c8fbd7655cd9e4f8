package cachemount

import (
	"bytes"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Mount is one RUN --mount=type=cache of the Dockerfile, as BuildKit keys it.
type Mount struct {
	// ID is BuildKit's cache id: BUILDKIT_CACHE_MOUNT_NS, "/", then the id
	// option, else the target cleaned (what dockerfile2llb passes to
	// llb.AsPersistentCacheDir).
	ID string
	// Name is the id option as written, else the target cleaned: what the
	// cache-mounts input names and the log shows.
	Name    string
	Target  string
	Sharing string // shared, private or locked
	// Owner is set when uid, gid or mode is (and source is not): BuildKit then
	// makes the cache's directory with them and keys the cache apart from one
	// without them.
	Owner *Owner
	Line  int // the RUN's line in the Dockerfile
}

// Owner is the ownership and mode a cache mount's directory is created with.
type Owner struct {
	UID, GID int
	Mode     uint32
}

// Key names the mount's contents in an artifact: two mounts BuildKit keeps
// apart never share one.
func (m Mount) Key() string {
	if m.Owner == nil {
		return m.ID
	}
	return fmt.Sprintf("%s uid=%d gid=%d mode=%o", m.ID, m.Owner.UID, m.Owner.GID, m.Owner.Mode)
}

// Skip is a cache mount that cannot be persisted, and why.
type Skip struct {
	Line   int
	Target string
	Why    string
}

// DiscoverOptions are what shapes the mounts' ids besides the Dockerfile.
type DiscoverOptions struct {
	BuildArgs map[string]string
	// BuildPlatform is the builder's platform; TargetPlatforms the build's
	// (empty: the builder's). Each target platform is expanded on its own, as
	// BuildKit builds each with its own TARGETARCH.
	BuildPlatform   string
	TargetPlatforms []string
	Target          string // the target stage, for TARGETSTAGE
}

// namespaceArg is the build argument BuildKit's Dockerfile frontend prefixes
// every cache id with.
const namespaceArg = "BUILDKIT_CACHE_MOUNT_NS"

// Discover lists the Dockerfile's cache mounts with BuildKit's own parser,
// expanding ARG and ENV values as the frontend would. Mounts it cannot
// reproduce are in the skips: from= (the cache is keyed on the source stage's
// snapshot, which only the build itself makes) and mounts naming a variable
// the Dockerfile does not set (it may come from the base image).
func Discover(dockerfile []byte, opt DiscoverOptions) ([]Mount, []Skip, error) {
	res, err := parser.Parse(bytes.NewReader(dockerfile))
	if err != nil {
		return nil, nil, fmt.Errorf("parse the Dockerfile: %w", err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("parse the Dockerfile: %w", err)
	}
	build, err := platforms.Parse(opt.BuildPlatform)
	if err != nil {
		return nil, nil, fmt.Errorf("builder platform %q: %w", opt.BuildPlatform, err)
	}
	targets := opt.TargetPlatforms
	if len(targets) == 0 {
		targets = []string{opt.BuildPlatform}
	}
	w := walker{opt: opt, lex: shell.NewLex(res.EscapeToken), seen: map[string]bool{}}
	for _, t := range targets {
		target, err := platforms.Parse(t)
		if err != nil {
			return nil, nil, fmt.Errorf("target platform %q: %w", t, err)
		}
		w.platform(stages, metaArgs, platformArgs(build, target, opt.Target))
	}
	return w.mounts, w.skips, nil
}

// platformArgs are the ARGs BuildKit defines for every build (dockerfile2llb's defaultArgs).
func platformArgs(build, target platforms.Platform, stage string) map[string]string {
	if stage == "" {
		stage = "default"
	}
	return map[string]string{
		"BUILDPLATFORM": platforms.Format(build), "BUILDOS": build.OS, "BUILDOSVERSION": build.OSVersion,
		"BUILDARCH": build.Architecture, "BUILDVARIANT": build.Variant,
		"TARGETPLATFORM": platforms.FormatAll(target), "TARGETOS": target.OS, "TARGETOSVERSION": target.OSVersion,
		"TARGETARCH": target.Architecture, "TARGETVARIANT": target.Variant, "TARGETSTAGE": stage,
	}
}

type walker struct {
	opt    DiscoverOptions
	lex    *shell.Lex
	mounts []Mount
	skips  []Skip
	seen   map[string]bool // mount keys and skips already listed
}

// platform walks the stages for one target platform. ARG and ENV set one
// environment in order, as the frontend's state does; a stage built FROM
// another starts with that stage's environment.
func (w *walker) platform(stages []instructions.Stage, metaArgs []instructions.ArgCommand, auto map[string]string) {
	global := maps.Clone(auto)
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if v, ok := w.argValue(kv, global, nil); ok {
				global[kv.Key] = v
			}
		}
	}
	ns := w.opt.BuildArgs[namespaceArg]
	byName := map[string]map[string]string{}
	for _, st := range stages {
		env := maps.Clone(byName[strings.ToLower(st.BaseName)])
		if env == nil {
			env = map[string]string{}
		}
		for _, cmd := range st.Commands {
			switch c := cmd.(type) {
			case *instructions.ArgCommand:
				for _, kv := range c.Args {
					if v, ok := w.argValue(kv, global, env); ok {
						env[kv.Key] = v
					}
				}
			case *instructions.EnvCommand:
				for _, kv := range c.Env {
					if v, _, err := w.lex.ProcessWord(kv.Value, shell.EnvsFromSlice(environ(env))); err == nil {
						env[kv.Key] = v
					}
				}
			case *instructions.RunCommand:
				w.run(c, env, ns)
			}
		}
		if st.Name != "" {
			byName[strings.ToLower(st.Name)] = env
		}
	}
}

// argValue is an ARG's value as dispatchArg sets it: the build argument, else
// the default expanded, else the global ARG of that name (or BuildKit's own).
func (w *walker) argValue(kv instructions.KeyValuePairOptional, global, env map[string]string) (string, bool) {
	if v, ok := w.opt.BuildArgs[kv.Key]; ok {
		return v, true
	}
	if kv.Value == nil {
		v, ok := global[kv.Key]
		return v, ok
	}
	scope := env
	if scope == nil {
		scope = global
	}
	v, _, err := w.lex.ProcessWord(*kv.Value, shell.EnvsFromSlice(environ(scope)))
	return v, err == nil
}

func environ(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// run expands a RUN's mounts in env and records its cache mounts.
func (w *walker) run(c *instructions.RunCommand, env map[string]string, ns string) {
	line := 0
	if loc := c.Location(); len(loc) > 0 {
		line = loc[0].Start.Line
	}
	unmatched := map[string]bool{}
	err := c.Expand(func(word string) (string, error) {
		r, err := w.lex.ProcessWordWithMatches(word, shell.EnvsFromSlice(environ(env)))
		for k := range r.Unmatched {
			unmatched[k] = true
		}
		return r.Result, err
	})
	if err != nil {
		return // the build fails on the same options, with BuildKit's message
	}
	for _, m := range instructions.GetMounts(c) {
		if m.Type != instructions.MountTypeCache {
			continue
		}
		var why string
		switch {
		case len(unmatched) > 0:
			why = fmt.Sprintf("its RUN uses %s, which no ARG or ENV of the Dockerfile sets (the base image may): write the id and target without it to persist the mount",
				strings.Join(slices.Sorted(maps.Keys(unmatched)), ", "))
		case m.From != "":
			why = "from= keys the cache on the source stage's snapshot, which exists only in the build itself"
		}
		if why != "" {
			w.skip(Skip{Line: line, Target: asWritten(m.Target), Why: why})
			continue
		}
		w.add(mountOf(m, ns, line))
	}
}

// mountOf is dispatchRunMounts' reading of a cache mount.
func mountOf(m *instructions.Mount, ns string, line int) Mount {
	name := m.CacheID
	if name == "" {
		name = path.Clean(m.Target)
	}
	out := Mount{ID: ns + "/" + name, Name: asWritten(name), Target: m.Target, Sharing: string(instructions.MountSharingShared), Line: line}
	if m.CacheSharing != "" {
		out.Sharing = string(m.CacheSharing)
	}
	// A source= path wins over uid/gid/mode in the frontend (they are then ignored).
	if path.Join("/", m.Source) == "/" && (m.UID != nil || m.GID != nil || m.Mode != nil) {
		o := &Owner{Mode: 0o755}
		if m.UID != nil {
			o.UID = int(*m.UID)
		}
		if m.GID != nil {
			o.GID = int(*m.GID)
		}
		if m.Mode != nil {
			o.Mode = uint32(*m.Mode)
		}
		out.Owner = o
	}
	return out
}

func (w *walker) add(m Mount) {
	if !w.seen[m.Key()] {
		w.seen[m.Key()] = true
		w.mounts = append(w.mounts, m)
	}
}

func (w *walker) skip(s Skip) {
	k := fmt.Sprintf("skip %d %s %s", s.Line, s.Target, s.Why)
	if !w.seen[k] {
		w.seen[k] = true
		w.skips = append(w.skips, s)
	}
}

// isAuto tells cache-mounts: auto, which keeps every mount and leaves to the
// cost rule which are seeded; mounts named one by one are always seeded.
func isAuto(spec []string) bool { return len(spec) == 1 && strings.EqualFold(spec[0], "auto") }

// Select picks the mounts the cache-mounts input names: "auto" is every
// mount; else each entry names mounts by id (as written or BuildKit's) or by
// target. It returns the entries that name no mount.
func Select(mounts []Mount, spec []string) (chosen []Mount, unknown []string) {
	if isAuto(spec) {
		return mounts, nil
	}
	picked := map[string]bool{}
	for _, e := range spec {
		hit := false
		for _, m := range mounts {
			if e == m.Name || e == m.ID || path.Clean(e) == path.Clean(asWritten(m.Target)) {
				hit = true
				if !picked[m.Key()] {
					picked[m.Key()] = true
					chosen = append(chosen, m)
				}
			}
		}
		if !hit {
			unknown = append(unknown, e)
		}
	}
	return chosen, unknown
}

// asWritten undoes BuildKit's reading of a RUN's flags byte by byte, each
// byte a rune (extractBuilderFlags in frontend/dockerfile/parser), which
// turns "ü" into "Ã¼" in every mount option. BuildKit keys the cache on that
// reading, so IDs keep it; names shown or matched against the inputs are the
// Dockerfile's text again.
func asWritten(s string) string {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			return s // not a byte-wise reading
		}
		b = append(b, byte(r))
	}
	if !utf8.Valid(b) {
		return s
	}
	return string(b)
}
