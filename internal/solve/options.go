package solve

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/ociindex"
	"github.com/moby/buildkit/identity"
	"github.com/moby/buildkit/session/sshforward/sshprovider"
	"github.com/moby/buildkit/util/entitlements"
	digest "github.com/opencontainers/go-digest"
	"github.com/tonistiigi/fsutil"
)

// SSH is one ssh input entry: what RUN --mount=type=ssh,id=ID reaches, an
// ssh-agent socket or private key files, by path.
type SSH struct {
	ID    string
	Paths []string
}

// Output is a further place the result goes (the outputs and load inputs),
// besides the image export that Tags, Push and ImageAttrs describe.
type Output struct {
	Type  string // client.ExporterLocal, ExporterTar, ExporterOCI or ExporterDocker
	Dest  string // a directory (local, or oci/docker with tar=false), else a file
	Attrs map[string]string
	// Stream, when set, receives a tar output instead of Dest (load: docker load).
	Stream func() (io.WriteCloser, error)
}

// DirOutput tells whether an output of this type and attributes writes a
// directory rather than a tar file, as buildx decides it.
func DirOutput(typ string, attrs map[string]string) bool {
	switch typ {
	case client.ExporterLocal:
		return true
	case client.ExporterOCI, client.ExporterDocker:
		tar, err := strconv.ParseBool(attrs["tar"])
		return err == nil && !tar
	}
	return false
}

// ContextKind is what a named build context's value is.
type ContextKind int

const (
	ContextLocal     ContextKind = iota // a directory on the runner
	ContextImage                        // docker-image://ref
	ContextOCILayout                    // oci-layout://dir[:tag][@digest]
	ContextRemote                       // a git or HTTP(S) URL, read by the builder
	ContextTarget                       // target:stage, a buildx bake feature
)

// ClassifyContext tells a named context's kind from its value, as buildx does.
func ClassifyContext(v string) ContextKind {
	switch {
	case strings.HasPrefix(v, "docker-image://"):
		return ContextImage
	case strings.HasPrefix(v, "oci-layout://"):
		return ContextOCILayout
	case strings.HasPrefix(v, "target:"):
		return ContextTarget
	case strings.HasPrefix(v, "git@"), strings.HasPrefix(v, "git://"), strings.HasPrefix(v, "ssh://"),
		strings.HasPrefix(v, "http://"), strings.HasPrefix(v, "https://"):
		return ContextRemote
	}
	return ContextLocal
}

// OCILayoutRef splits oci-layout://dir[:tag][@digest] into its parts, as
// buildx's ocilayout.Parse does (the tag defaults to latest).
func OCILayoutRef(v string) (dir, tag string, dgst digest.Digest, err error) {
	dir = strings.TrimPrefix(v, "oci-layout://")
	if d, after, ok := strings.Cut(dir, "@"); ok {
		dir = d
		if dgst, err = digest.Parse(after); err != nil {
			return "", "", "", fmt.Errorf("%q: bad digest: %w", v, err)
		}
	}
	tag = "latest"
	// A ':' after the last '/' starts the tag.
	if i := strings.LastIndex(dir, ":"); i > strings.LastIndex(dir, "/") {
		dir, tag = dir[:i], dir[i+1:]
	}
	if dir == "" {
		return "", "", "", fmt.Errorf("%q: no directory", v)
	}
	return dir, tag, dgst, nil
}

// ociLayoutDigest is the digest of tag in the OCI layout at dir, or of its only
// image.
func ociLayoutDigest(dir, tag string) (digest.Digest, error) {
	idx := ociindex.NewStoreIndex(dir)
	desc, err := idx.Get(tag)
	if err == nil && desc == nil {
		desc, err = idx.GetSingle()
	}
	if err != nil {
		return "", err
	}
	if desc == nil {
		return "", fmt.Errorf("no image tagged %q in %s", tag, dir)
	}
	return desc.Digest, nil
}

// addContexts adds the named build contexts: local directories as further
// local mounts, OCI layouts as content stores, the rest as the frontend's
// context:NAME attribute, as buildx does.
func addContexts(opt *client.SolveOpt, contexts map[string]string) error {
	for name, v := range contexts {
		switch ClassifyContext(v) {
		case ContextImage, ContextRemote, ContextTarget:
			opt.FrontendAttrs["context:"+name] = v
		case ContextOCILayout:
			dir, tag, dgst, err := OCILayoutRef(v)
			if err != nil {
				return fmt.Errorf("build context %s: %w", name, err)
			}
			if dgst == "" {
				if dgst, err = ociLayoutDigest(dir, tag); err != nil {
					return fmt.Errorf("build context %s: %w", name, err)
				}
			}
			store, err := local.NewStore(dir)
			if err != nil {
				return fmt.Errorf("build context %s: OCI layout %s: %w", name, dir, err)
			}
			if opt.OCIStores == nil {
				opt.OCIStores = map[string]content.Store{}
			}
			id := identity.NewID() // the store's name, as the reference's repository
			opt.OCIStores[id] = store
			opt.FrontendAttrs["context:"+name] = "oci-layout://" + id + "@" + dgst.String()
		default:
			fs, err := fsutil.NewFS(v)
			if err != nil {
				return fmt.Errorf("build context %s: %w", name, err)
			}
			mount := name
			if name == "context" || name == "dockerfile" {
				mount = "_" + name // the main context's and Dockerfile's mounts
			}
			opt.LocalMounts[mount] = fs
			opt.FrontendAttrs["context:"+name] = "local:" + mount
		}
	}
	return nil
}

// addOutputs adds the further outputs; image-like ones get the image's
// annotations, as buildx gives them.
func addOutputs(opt *client.SolveOpt, req Request) {
	for _, o := range req.Outputs {
		e := client.ExportEntry{Type: o.Type, Attrs: maps.Clone(o.Attrs)}
		if e.Attrs == nil {
			e.Attrs = map[string]string{}
		}
		if o.Type == client.ExporterOCI || o.Type == client.ExporterDocker {
			maps.Copy(e.Attrs, req.Annotations)
		}
		switch {
		case o.Stream != nil:
			stream := o.Stream
			e.Output = func(map[string]string) (io.WriteCloser, error) { return stream() }
		case DirOutput(o.Type, o.Attrs):
			e.OutputDir = o.Dest
		default:
			dest := o.Dest
			e.Output = func(map[string]string) (io.WriteCloser, error) {
				if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
					return nil, err
				}
				return os.Create(dest)
			}
		}
		opt.Exports = append(opt.Exports, e)
	}
}

// addRunOptions sets what the frontend applies to every RUN step and to
// image resolution, and the entitlements the build asks for.
func addRunOptions(opt *client.SolveOpt, req Request) error {
	attrs := opt.FrontendAttrs
	if req.Pull {
		attrs["image-resolve-mode"] = "pull"
	}
	if len(req.NoCacheFilters) > 0 && !req.NoCache {
		attrs["no-cache"] = strings.Join(req.NoCacheFilters, ",")
	}
	switch req.Network {
	case "":
	case "host":
		attrs["force-network-mode"] = req.Network
		opt.AllowedEntitlements = append(opt.AllowedEntitlements, entitlements.EntitlementNetworkHost.String())
	default:
		attrs["force-network-mode"] = req.Network
	}
	if len(req.AddHosts) > 0 {
		attrs["add-hosts"] = strings.Join(req.AddHosts, ",")
	}
	if req.ShmSize > 0 {
		attrs["shm-size"] = strconv.FormatInt(req.ShmSize, 10)
	}
	if len(req.Ulimits) > 0 {
		attrs["ulimit"] = strings.Join(req.Ulimits, ",")
	}
	if req.CgroupParent != "" {
		attrs["cgroup-parent"] = req.CgroupParent
	}
	opt.AllowedEntitlements = append(opt.AllowedEntitlements, req.Entitlements...)
	if len(req.SSH) > 0 {
		confs := make([]sshprovider.AgentConfig, len(req.SSH))
		for i, s := range req.SSH {
			confs[i] = sshprovider.AgentConfig{ID: s.ID, Paths: s.Paths}
		}
		p, err := sshprovider.NewSSHAgentProvider(confs)
		if err != nil {
			return fmt.Errorf("ssh: %w", err)
		}
		opt.Session = append(opt.Session, p)
	}
	return addContexts(opt, req.Contexts)
}
