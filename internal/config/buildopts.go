package config

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	units "github.com/docker/go-units"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/util/entitlements"
	"github.com/sethvargo/go-githubactions"

	"github.com/ecr-build-cache/ecr-build-cache/internal/buildkitconn"
	"github.com/ecr-build-cache/ecr-build-cache/internal/solve"
)

// readBuildOptions reads the rest of docker/build-push-action's inputs, with
// its syntax and meaning (buildx build's flags of the same names), after the
// tags, push and secrets.
func (c *Config) readBuildOptions(p *problems, a *githubactions.Action, m *masker, in func(string) string, boolean func(string) bool, list func(string, bool) []string) {
	c.readSSH(p, a.Getenv, list("ssh", false))
	c.readContexts(p, in("build-contexts"))
	c.readSecretEnvs(p, a, m, in("secret-envs"))
	c.readGitHubToken(p, a, m, in("github-token"))
	c.Load = boolean("load")
	c.readOutputs(p, in("outputs"), a.GetInput("push") != "")
	c.readCompression(p, in("compression"), in("compression-level"))
	c.Pull = boolean("pull")
	c.NoCacheFilters = list("no-cache-filters", true)
	for _, e := range list("allow", true) {
		if _, _, err := entitlements.Parse(e); err != nil {
			p.add("allow: %q: %v; the entitlements are network.host, security.insecure and device[=name]", e, err)
		}
		c.Allow = append(c.Allow, e)
	}
	switch n := in("network"); n {
	case "", "default":
	case "host", "none":
		c.Network = n
	default:
		p.add("network: %q is not default, host or none (as buildx: BuildKit has no other network modes; a custom network is the builder's setting)", n)
	}
	for _, h := range list("add-hosts", true) {
		if e, err := extraHost(h); err != nil {
			p.add("add-hosts: %q: %v", h, err)
		} else {
			c.AddHosts = append(c.AddHosts, e)
		}
	}
	if v := in("shm-size"); v != "" {
		n, err := units.RAMInBytes(v)
		if err != nil || n <= 0 {
			p.add("shm-size: %q is not a size such as 64m or 2g", v)
		}
		c.ShmSize = n
	}
	for _, v := range list("ulimit", false) {
		u, err := units.ParseUlimit(v)
		if err != nil {
			p.add("ulimit: %q: %v; write name=soft[:hard], e.g. nofile=1024:1024", v, err)
			continue
		}
		c.Ulimits = append(c.Ulimits, u.String())
	}
	c.CgroupParent = in("cgroup-parent")
	c.readCall(p, in("call"))
	c.checkLoad(p)
	var err error
	c.Daemon, err = buildkitconn.ParseDaemon(in("buildkit-image"), in("buildkitd-config-inline"), in("buildkitd-flags"))
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		*p = append(*p, j.Unwrap()...)
	}
}

// readSSH reads the ssh input like buildx's --ssh: default (the runner's
// ssh-agent) or id=path[,path...] (agent sockets or private key files). A
// line may also hold several entries, as build-push-action splits the input
// at commas: a field with '=' starts an entry, and a field without one is
// another path of the entry before it when it looks like a path, else an id.
func (c *Config) readSSH(p *problems, getenv func(string) string, lines []string) {
	for _, line := range lines {
		var cur *solve.SSH
		for f := range strings.SplitSeq(line, ",") {
			f = strings.TrimSpace(f)
			id, path, hasPath := strings.Cut(f, "=")
			switch {
			case f == "":
				continue
			case !hasPath && cur != nil && len(cur.Paths) > 0 && strings.ContainsAny(f, `/\~.`):
				cur.Paths = append(cur.Paths, f)
				continue
			case hasPath:
				c.SSH = append(c.SSH, solve.SSH{ID: id, Paths: []string{path}})
			default:
				c.SSH = append(c.SSH, solve.SSH{ID: id})
			}
			cur = &c.SSH[len(c.SSH)-1]
		}
	}
	seen := map[string]bool{}
	for i, s := range c.SSH {
		switch {
		case s.ID == "":
			p.add("ssh: an entry has no id; write default, or id=path to a key file or agent socket")
		case seen[s.ID]:
			p.add("ssh: id %q is given twice", s.ID)
		}
		seen[s.ID] = true
		if len(s.Paths) == 0 || s.Paths[0] == "" {
			// buildx's default: the agent of SSH_AUTH_SOCK (the run's, never the process's).
			sock := getenv("SSH_AUTH_SOCK")
			if sock == "" {
				p.add("ssh: %s uses the runner's ssh-agent, but SSH_AUTH_SOCK is not set; start an agent before this step (e.g. webfactory/ssh-agent), or give %s=<path to a key file>", s.ID, s.ID)
			}
			c.SSH[i].Paths = []string{sock}
			continue
		}
		for _, path := range s.Paths {
			if _, err := os.Stat(path); err != nil {
				p.add("ssh: %s: %q cannot be read: %v", s.ID, path, err)
			}
		}
	}
}

// readContexts reads build-contexts: name=value per line, as buildx's
// --build-context.
func (c *Config) readContexts(p *problems, v string) {
	kv, errs := KeyValues(v, "build-contexts")
	*p = append(*p, errs...)
	for name, v := range kv {
		v = strings.TrimSpace(v)
		named, err := reference.ParseNormalizedNamed(name)
		if err != nil {
			p.add("build-contexts: %q is not a context name (%v); use the name FROM or COPY --from uses", name, err)
			continue
		}
		name = strings.TrimSuffix(reference.FamiliarString(named), ":latest")
		switch solve.ClassifyContext(v) {
		case solve.ContextImage:
			if _, err := reference.ParseNormalizedNamed(strings.TrimPrefix(v, "docker-image://")); err != nil {
				p.add("build-contexts: %s: %q is not an image reference: %v", name, v, err)
			}
		case solve.ContextOCILayout:
			dir, _, _, err := solve.OCILayoutRef(v)
			if err == nil {
				_, err = os.Stat(dir + "/index.json")
			}
			if err != nil {
				p.add("build-contexts: %s: %q is not an OCI layout directory (oci-layout://dir[:tag][@digest]): %v", name, v, err)
			}
		case solve.ContextTarget:
			p.add("build-contexts: %s: %q: target: contexts are a docker buildx bake feature (another bake target's result); "+
				"a stage of the same Dockerfile is used by its name (FROM stage, COPY --from=stage)", name, v)
		case solve.ContextLocal:
			if st, err := os.Stat(v); err != nil || !st.IsDir() {
				p.add("build-contexts: %s: %q is not a directory, nor docker-image://, oci-layout:// or a git or HTTP URL", name, v)
			}
		}
		if c.Contexts == nil {
			c.Contexts = map[string]string{}
		}
		c.Contexts[name] = v
	}
}

// readSecretEnvs reads secret-envs (a list, commas too): id=ENV, the secret's
// value read from the step's environment and masked like the secrets input's.
// Errors name the line, not the entry.
func (c *Config) readSecretEnvs(p *problems, a *githubactions.Action, m *masker, input string) {
	es, err := entries(input, false)
	if err != nil {
		p.add("secret-envs: %w", err)
	}
	for _, e := range es {
		if strings.TrimSpace(e.text) == "" {
			continue
		}
		id, env, ok := strings.Cut(e.text, "=")
		id, env = strings.TrimSpace(id), strings.TrimSpace(env)
		switch {
		case ok && id != "" && env == "":
			p.add("secret-envs: %s: no ENV_VAR after the '='; write id=ENV_VAR, the name of a variable in the step's env", id)
			continue
		case !ok || id == "":
			// Not shown: a secret pasted here instead of a variable's name.
			p.add("secret-envs: line %d: an entry is not id=ENV_VAR (not shown: it may hold a secret); write id=ENV_VAR, the name of a variable in the step's env", e.line)
			continue
		}
		v := a.Getenv(env)
		m.mask(v)
		if v == "" {
			// As for secrets: a fork's run gets empty secrets; that is no error.
			a.Warningf("secret-envs: %s: %s is empty or unset; the secret is not passed to the build", id, env)
			continue
		}
		c.addSecret(p, id, []byte(v))
	}
}

// readGitHubToken passes github-token to the build as build-push-action does:
// the secret GIT_AUTH_TOKEN.<GitHub host>, which BuildKit's git source sends to
// that host, unless the secrets already give a GIT_AUTH_TOKEN.
func (c *Config) readGitHubToken(p *problems, a *githubactions.Action, m *masker, token string) {
	if token == "" {
		return
	}
	m.mask(token)
	server := cmp.Or(a.Getenv("GITHUB_SERVER_URL"), "https://github.com")
	u, err := url.Parse(server)
	if err != nil || u.Host == "" {
		p.add("github-token: GITHUB_SERVER_URL %q is not a URL, so the token's host is unknown", server)
		return
	}
	id := "GIT_AUTH_TOKEN." + u.Host
	if _, ok := c.Secrets[id]; ok {
		return
	}
	if _, ok := c.Secrets["GIT_AUTH_TOKEN"]; ok {
		return
	}
	c.addSecret(p, id, []byte(token))
}

// outputTypes are the exporters an outputs entry may name, as buildx's.
var outputTypes = []string{"image", "registry", client.ExporterLocal, client.ExporterTar, client.ExporterOCI, client.ExporterDocker, "cacheonly"}

// readOutputs reads outputs: one buildx --output per line, in its CSV form.
// The one type=image (or registry) entry is the image export: its name
// attribute names the image when tags is empty, its push attribute decides the
// push, and its other attributes (push-by-digest, name-canonical, ...) go to
// the exporter. With outputs, push defaults to false, as in build-push-action:
// the outputs say where the image goes; push: true adds a registry push.
func (c *Config) readOutputs(p *problems, raw string, pushGiven bool) {
	var image map[string]string
	given := false
	for i, line := range strings.Split(raw, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		given = true
		typ, dest, attrs, err := parseOutput(line)
		if err != nil {
			p.add("outputs: line %d: %v", i+1, err)
			continue
		}
		switch typ {
		case "image", "registry":
			if image != nil {
				p.add("outputs: line %d: a second type=image/registry output; give every name in one (name=a,b)", i+1)
				continue
			}
			if typ == "registry" {
				attrs["push"] = "true"
				if _, ok := attrs["unpack"]; !ok {
					attrs["unpack"] = "false" // as buildx: pushing needs no unpacked image
				}
			}
			image = attrs
		case "cacheonly":
		case client.ExporterDocker:
			if dest == "" && !solve.DirOutput(typ, attrs) {
				c.Load = true // as buildx: a docker output without dest loads the image
				continue
			}
			fallthrough
		default:
			if err := checkDest(typ, dest, attrs); err != nil {
				p.add("outputs: line %d: %v", i+1, err)
				continue
			}
			c.Outputs = append(c.Outputs, solve.Output{Type: typ, Dest: dest, Attrs: attrs})
		}
	}
	if !given {
		return
	}
	push := pushGiven && c.Push
	if image != nil {
		if v, ok := image["push"]; ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				p.add("outputs: push=%q is not true or false", v)
			}
			if pushGiven && c.Push && !b {
				p.add("outputs: the type=image output says push=false, but the push input is true; remove one")
			}
			push = push || b
		}
		if names := image["name"]; names != "" && len(c.Tags) == 0 {
			// As buildx: tags, when given, name the image instead.
			c.Tags = strings.Split(names, ",")
		}
		delete(image, "name")
		delete(image, "push")
		c.ImageAttrs = image
	}
	c.Push = push
	c.OutputsOnly = image == nil && !push
}

// readCompression reads compression and compression-level, after outputs: its
// type=image entry must not compress the image otherwise than the cache.
func (c *Config) readCompression(p *problems, typ, level string) {
	var err error
	if c.Compression, err = solve.ParseCompression(typ, level); err != nil {
		*p = append(*p, err)
	}
	for _, k := range []string{"compression", "compression-level", "force-compression"} {
		if _, ok := c.ImageAttrs[k]; ok {
			p.add("outputs: the type=image entry sets %s; use the compression and compression-level inputs, which compress the cache's layers the same way (BuildKit would otherwise compress every layer twice)", k)
		}
	}
}

// parseOutput reads one --output value as buildx does: a bare path is a local
// output; otherwise CSV key=value fields, type required.
func parseOutput(line string) (typ, dest string, attrs map[string]string, err error) {
	r := csv.NewReader(strings.NewReader(line))
	r.LazyQuotes = true
	fields, err := r.Read()
	if err != nil {
		return "", "", nil, fmt.Errorf("not CSV: %w", err)
	}
	if len(fields) == 1 && !strings.HasPrefix(line, "type=") && !strings.Contains(line, "=") {
		return client.ExporterLocal, line, map[string]string{}, checkDest(client.ExporterLocal, line, nil)
	}
	attrs = map[string]string{}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return "", "", nil, fmt.Errorf("%q is not key=value", f)
		}
		switch k = strings.ToLower(strings.TrimSpace(k)); k {
		case "type":
			typ = v
		case "dest":
			dest = v
		default:
			attrs[k] = v
		}
	}
	if !slices.Contains(outputTypes, typ) {
		return "", "", nil, fmt.Errorf("type %q: use one of %s", typ, strings.Join(outputTypes, ", "))
	}
	return typ, dest, attrs, nil
}

// checkDest checks a file or directory output's dest as buildx does, and
// refuses stdout: it is the step's log.
func checkDest(typ, dest string, attrs map[string]string) error {
	switch dest {
	case "-":
		return fmt.Errorf("type=%s: dest=- would write the image into the step's log; give a path", typ)
	case "":
		return fmt.Errorf("type=%s: dest is required", typ)
	}
	st, err := os.Stat(dest)
	switch {
	case err != nil && !os.IsNotExist(err):
		return fmt.Errorf("type=%s: dest %q: %w", typ, dest, err)
	case err == nil && solve.DirOutput(typ, attrs) && !st.IsDir():
		return fmt.Errorf("type=%s: dest %q is a file, not a directory", typ, dest)
	case err == nil && !solve.DirOutput(typ, attrs) && st.IsDir():
		return fmt.Errorf("type=%s: dest %q is a directory; give the file to write", typ, dest)
	}
	return nil
}

// checkLoad refuses what the docker exporter cannot load, with buildx's
// reason: an image index (several platforms, or attestations).
func (c *Config) checkLoad(p *problems) {
	if !c.Load {
		return
	}
	if len(c.Platforms) > 1 || c.Provenance.On || c.SBOM.On {
		p.add("load: the docker exporter cannot load an image index (several platforms, or provenance/sbom attestations); build one platform without attestations to load it, or write it with outputs: type=oci,dest=<file>")
	}
}

// extraHost reads an add-hosts entry, host:ip or host=ip, into BuildKit's
// host=ip form.
func extraHost(h string) (string, error) {
	host, ip, ok := strings.Cut(h, "=")
	if !ok {
		host, ip, ok = strings.Cut(h, ":")
	}
	if !ok || host == "" || ip == "" {
		return "", fmt.Errorf("not host:ip")
	}
	if ip == "host-gateway" {
		return "", fmt.Errorf("host-gateway is resolved by a Docker engine's builder only; give the address")
	}
	if len(ip) > 2 && ip[0] == '[' && ip[len(ip)-1] == ']' {
		ip = ip[1 : len(ip)-1]
	}
	if net.ParseIP(ip) == nil {
		return "", fmt.Errorf("%q is not an IP address", ip)
	}
	return host + "=" + ip, nil
}

// callNames are the call input's values: buildx's --call (check is lint).
var callNames = []string{"build", "check", "outline", "targets"}

// readCall reads call like buildx's --call: a name, then optional
// format=json|text and ignorestatus=true|false.
func (c *Config) readCall(p *problems, v string) {
	fields := strings.Split(v, ",")
	call := solve.Call{Name: strings.TrimSpace(fields[0])}
	if !slices.Contains(callNames, call.Name) {
		p.add("call: %q is not one of %s", call.Name, strings.Join(callNames, ", "))
		return
	}
	for _, f := range fields[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(f), "=")
		switch k {
		case "format":
			if val != "json" && val != "text" {
				p.add("call: format=%q is not json or text", val)
			}
			call.Format = val
		case "ignorestatus":
			b, err := strconv.ParseBool(val)
			if err != nil {
				p.add("call: ignorestatus=%q is not true or false", val)
			}
			call.IgnoreStatus = b
		default:
			p.add("call: %q is not format=... or ignorestatus=...", f)
		}
	}
	switch call.Name {
	case "build":
		return
	case "check":
		call.Name = "lint"
	}
	c.Call = &call
}
