package cachemount

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
)

// The mounts artifact is an OCI image manifest: a fixed config of ConfigType
// and one zstd-compressed tar layer per mount, its annotations naming the
// mount (Mount.Key) and its content digest (the sha256 of the mount's tar
// without times), which decides whether a later run uploads again.
const (
	ConfigType     = "application/vnd.ecr-build-cache.mounts.config.v1+json"
	layerType      = types.MediaType("application/vnd.oci.image.layer.v1.tar+zstd")
	AnnotationKey  = "io.github.ecr-build-cache.mount"                // Mount.Key
	AnnotationSum  = "io.github.ecr-build-cache.mount.content-digest" // sha256 of the tar without times
	AnnotationSize = "io.github.ecr-build-cache.mount.size"           // the tar's size in bytes, decimal
	// What a mount costs and saves, in milliseconds, decimal (costs.go): the
	// download and extraction of its last seeding, and the RUN steps using it
	// the last time they ran with it seeded and with it empty.
	AnnotationTransfer = "io.github.ecr-build-cache.mount.transfer-ms"
	AnnotationSeeded   = "io.github.ecr-build-cache.mount.steps-seeded-ms"
	AnnotationEmpty    = "io.github.ecr-build-cache.mount.steps-empty-ms"
)

var config = []byte(`{"kind":"cache-mounts","version":1}`)

func configDescriptor() v1.Descriptor {
	h, n, _ := v1.SHA256(bytes.NewReader(config))
	return v1.Descriptor{MediaType: ConfigType, Digest: h, Size: n}
}

// manifest is the artifact holding layers, dated: every push is a new
// manifest, which a registry that dates an image by its first push (ECR)
// dates anew, even when its layers are another tag's.
func manifest(layers []v1.Descriptor, created time.Time) ([]byte, error) {
	return json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: configDescriptor(), Layers: layers,
		Annotations: map[string]string{"org.opencontainers.image.created": created.UTC().Format(time.RFC3339Nano)}})
}

// sameLayers reports whether two artifacts hold the same mounts in the same
// order (whatever their manifests' annotations say).
func sameLayers(a, b []v1.Descriptor) bool {
	return slices.EqualFunc(a, b, func(x, y v1.Descriptor) bool {
		return x.Digest == y.Digest && x.MediaType == y.MediaType && maps.Equal(x.Annotations, y.Annotations)
	})
}

// layers are an artifact's layers by mount key; nil when a is not a mounts artifact.
func layers(a *registry.Artifact) map[string]v1.Descriptor {
	if a == nil || a.Manifest.Config.MediaType != ConfigType {
		return nil
	}
	out := map[string]v1.Descriptor{}
	for _, l := range a.Manifest.Layers {
		if k := l.Annotations[AnnotationKey]; k != "" && l.MediaType == layerType {
			out[k] = l
		}
	}
	return out
}

// layer describes the blob the helper wrote for m.
func layer(m Mount, r mountResult) (v1.Descriptor, error) {
	h, err := v1.NewHash(r.BlobDigest)
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: layerType, Digest: h, Size: r.BlobSize, Annotations: map[string]string{
		AnnotationKey: m.Key(), AnnotationSum: r.Digest, AnnotationSize: strconv.FormatInt(r.Size, 10),
	}}, nil
}

func fileBlob(d v1.Descriptor, path string) registry.Blob {
	return registry.Blob{Descriptor: d, Open: func() (io.ReadCloser, error) { return os.Open(path) }}
}

func configBlob() registry.Blob {
	return registry.Blob{Descriptor: configDescriptor(), Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(config)), nil }}
}
