package cachemount

import (
	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
)

// Tag is the tag of the mounts artifact for key, next to the layer cache's
// cacheref.Tag(prefix, key, scope, platform):
//
//	<prefix>-mnt-<key slug>[-<scope slug>][-<platform slug>]-<hash>
//
// It is cacheref.Tag with prefix "<prefix>-mnt" and the scope followed by a
// NUL byte: no input can hold a NUL (environment variables cannot), so no
// layer-cache tag of any prefix hashes the same fields, while the slug drops
// the NUL and the tag reads like its layer cache's. It has the same 128
// character limit.
func Tag(prefix string, key cacheref.Key, scope, platform string) string {
	return cacheref.Tag(prefix+"-mnt", key, scope+"\x00", platform)
}

// Refs are the mounts artifact references of a run decided by d, in
// repository: the imports in d's priority order, and the export ("" when the
// run writes no cache, so an untrusted run never writes one).
func Refs(d cacheref.Decision, repository, prefix, scope, platform string) (imports []string, export string) {
	ref := func(k cacheref.Key) string { return repository + ":" + Tag(prefix, k, scope, platform) }
	for _, k := range d.Reads {
		imports = append(imports, ref(k))
	}
	if d.Writes && !d.Untrusted {
		export = ref(d.Own)
	}
	return imports, export
}
