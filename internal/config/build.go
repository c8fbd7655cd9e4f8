package config

import (
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/containerd/platforms"
)

// annotationKey is buildx's annotation syntax: [type[platform]:]key, where type
// says which object of the pushed image the annotation goes on.
var annotationKey = regexp.MustCompile(`^(?:(manifest|index|manifest-descriptor|index-descriptor)(\[[^\]]+\])?:)?([^\s=:\[\]]+)$`)

// readBuildExtras reads platforms, annotations, secrets, secret-files,
// provenance and sbom.
func (c *Config) readBuildExtras(p *problems, in func(string) string, platformList []string) {
	for _, pl := range platformList {
		if _, err := platforms.Parse(pl); err != nil {
			p.add("platforms: %q is not a platform (%v); write os/arch[/variant], e.g. linux/amd64,linux/arm64", pl, err)
		}
	}
	c.Platforms = platformList

	anns, errs := KeyValues(in("annotations"), "annotations")
	*p = append(*p, errs...)
	for k, v := range anns {
		m := annotationKey.FindStringSubmatch(k)
		if m == nil {
			p.add("annotations: %q is not [manifest|index|manifest-descriptor|index-descriptor[platform]:]key", k)
			continue
		}
		attr := "annotation"
		if m[1] != "" {
			attr += "-" + m[1]
		}
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations[attr+m[2]+"."+m[3]] = v
	}

	// Secrets reach RUN --mount=type=secret through the session, never as build args.
	secrets, errs := KeyValues(in("secrets"), "secrets")
	*p = append(*p, errs...)
	files, errs := KeyValues(in("secret-files"), "secret-files")
	*p = append(*p, errs...)
	for id, v := range secrets {
		c.addSecret(p, id, []byte(v))
	}
	for id, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			p.add("secret-files: %s: cannot read %q: %v", id, path, err)
			continue
		}
		c.addSecret(p, id, b)
	}

	c.Provenance = attestation(p, "provenance", in("provenance"), "mode=min")
	c.SBOM = attestation(p, "sbom", in("sbom"), "")
}

func (c *Config) addSecret(p *problems, id string, v []byte) {
	if _, dup := c.Secrets[id]; dup {
		p.add("secrets: id %q is given twice (secrets and secret-files share ids)", id)
		return
	}
	if c.Secrets == nil {
		c.Secrets = map[string][]byte{}
	}
	c.Secrets[id] = v
}

// SecretValues lists the secret values to mask, line by line, as the runner
// masks line by line.
func (c *Config) SecretValues() []string {
	var out []string
	for _, v := range c.Secrets {
		for _, l := range strings.Split(string(v), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
	}
	return out
}

// Attestation is a provenance or SBOM request: the frontend's attest:<kind>
// attribute, set to Opts, when On.
type Attestation struct {
	On   bool
	Opts string
}

// attestation maps a provenance/sbom input like buildx: true = the default
// options, false or empty = none, else key=value options.
func attestation(p *problems, name, v, defaults string) Attestation {
	if v == "" {
		return Attestation{}
	}
	if b, err := strconv.ParseBool(v); err == nil {
		return Attestation{On: b, Opts: defaults}
	}
	for _, kv := range strings.Split(v, ",") {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			p.add("%s: %q is not true, false or key=value options (e.g. mode=max)", name, v)
			return Attestation{}
		}
	}
	return Attestation{On: true, Opts: v}
}
