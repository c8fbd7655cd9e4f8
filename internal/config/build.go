package config

import (
	"errors"
	"strconv"
	"strings"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
)

// readBuildExtras reads platforms, annotations, provenance and sbom.
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
		attr, err := annotationAttr(k)
		if err != nil {
			p.add("annotations: %q is not [manifest|index|manifest-descriptor|index-descriptor[platform]:]key (%v)", k, err)
			continue
		}
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations[attr] = v
	}

	c.Provenance = attestation(p, "provenance", in("provenance"), "mode=min")
	c.SBOM = attestation(p, "sbom", in("sbom"), "")
}

// annotationAttr turns buildx's annotation syntax, [type[platform]:]key, into
// the image exporter's attribute, checked by BuildKit's own parser.
func annotationAttr(k string) (string, error) {
	attr := "annotation." + k
	if typ, key, ok := strings.Cut(k, ":"); ok {
		attr = "annotation-" + typ + "." + key
	}
	ak, ok, err := exptypes.ParseAnnotationKey(attr)
	switch {
	case err != nil:
		return "", err
	case !ok || strings.ContainsAny(ak.Key, "=[]"):
		return "", errors.New("not an annotation key")
	case ak.Platform != nil && (ak.Type == exptypes.AnnotationIndex || ak.Type == exptypes.AnnotationIndexDescriptor):
		return "", errors.New("an index annotation takes no platform") // BuildKit would drop it silently
	}
	return ak.String(), nil
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
