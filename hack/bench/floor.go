package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// The floor of a build is the registry bytes it cannot avoid moving: the
// layers its executed steps need as input that the registry already holds
// (downloaded to run them) and the layers it makes that the registry does not
// hold yet (uploaded). Manifests and cache configs are metadata and not
// counted; nor is the build context (it goes to buildkitd, not the registry).
type floorBytes struct {
	down, up int64
}

// refState is what a registry ref held: its layers and, for a cache, its config.
type refState struct {
	layers map[digest.Digest]int64 // blob digest -> size
	cache  *cacheimporttypes.CacheConfig
}

// floorOf computes a build's floor from the caches it imported (as they were
// before it ran), the base image, and the image and cache it left behind.
// Executed steps are the cache records the exported cache has and no imported
// one had; a record's inputs link to the records whose results it ran on.
func floorOf(imported []refState, baseImage, image, exported refState) floorBytes {
	held := map[digest.Digest]int64{}
	known := map[string]bool{}
	for _, s := range append(slices.Clone(imported), baseImage) {
		for d, n := range s.layers {
			held[d] = n
		}
		if s.cache != nil {
			for _, id := range recordIDs(s.cache) {
				known[id] = true
			}
		}
	}
	up := map[digest.Digest]int64{}
	for _, s := range []refState{image, exported} {
		for d, n := range s.layers {
			if _, ok := held[d]; !ok {
				up[d] = n
			}
		}
	}
	down := map[digest.Digest]int64{}
	if cfg := exported.cache; cfg != nil {
		for i, id := range recordIDs(cfg) {
			if known[id] {
				continue
			}
			for _, in := range cfg.Records[i].Inputs {
				for _, link := range in {
					if link.LinkIndex < 0 || link.LinkIndex >= len(cfg.Records) {
						continue
					}
					for _, d := range resultLayers(cfg, cfg.Records[link.LinkIndex]) {
						if n, ok := held[d]; ok {
							down[d] = n
						}
					}
				}
			}
		}
	}
	return floorBytes{down: sum(down), up: sum(up)}
}

// recordIDs identify a config's records across configs: a record's digest is
// its operation's, the same whatever its inputs, so a cache key is the digest
// with the keys of its inputs (and their selectors), recursively.
func recordIDs(cfg *cacheimporttypes.CacheConfig) []string {
	ids := make([]string, len(cfg.Records))
	var id func(i int, depth int) string
	id = func(i, depth int) string {
		if ids[i] != "" || depth > len(cfg.Records) { // the bound stops a malformed (cyclic) config
			return ids[i]
		}
		r := cfg.Records[i]
		parts := []string{r.Digest.String()}
		for _, in := range r.Inputs {
			var links []string
			for _, l := range in {
				if l.LinkIndex >= 0 && l.LinkIndex < len(cfg.Records) {
					links = append(links, l.Selector+"@"+id(l.LinkIndex, depth+1))
				}
			}
			slices.Sort(links)
			parts = append(parts, strings.Join(links, "|"))
		}
		ids[i] = digest.FromString(strings.Join(parts, "/")).String()
		return ids[i]
	}
	for i := range cfg.Records {
		id(i, 0)
	}
	return ids
}

// resultLayers are the blobs a record's results consist of: each result's
// layer with all its parents, and each chained result's layers.
func resultLayers(cfg *cacheimporttypes.CacheConfig, r cacheimporttypes.CacheRecord) []digest.Digest {
	var out []digest.Digest
	add := func(i int) {
		if i >= 0 && i < len(cfg.Layers) {
			out = append(out, cfg.Layers[i].Blob)
		}
	}
	for _, res := range r.Results {
		// A layer's parent index points to an earlier layer; the bound stops a
		// malformed (cyclic) config.
		for i, n := res.LayerIndex, 0; i >= 0 && i < len(cfg.Layers) && n <= len(cfg.Layers); i, n = cfg.Layers[i].ParentIndex, n+1 {
			add(i)
		}
	}
	for _, ch := range r.ChainedResults {
		for _, i := range ch.LayerIndexes {
			add(i)
		}
	}
	return out
}

func sum(m map[digest.Digest]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// readRef reads what ref holds (every platform of an index); a missing ref
// holds nothing.
func readRef(ref string) (refState, error) {
	d, found, err := teststack.Manifest(ref, nil)
	if err != nil || !found {
		return refState{layers: map[digest.Digest]int64{}}, err
	}
	if !d.MediaType.IsIndex() {
		s, err := stateOf(d.Manifest, func() ([]byte, error) {
			img, err := d.Image()
			if err != nil {
				return nil, err
			}
			return img.RawConfigFile()
		})
		if err != nil {
			return s, fmt.Errorf("%s: %w", ref, err)
		}
		return s, nil
	}
	s := refState{layers: map[digest.Digest]int64{}}
	idx, err := d.ImageIndex()
	if err != nil {
		return s, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return s, err
	}
	for _, c := range m.Manifests {
		sub, err := readRef(ref[:strings.LastIndexAny(ref, ":@")] + "@" + c.Digest.String())
		if err != nil {
			return s, err
		}
		maps.Copy(s.layers, sub.layers)
	}
	return s, nil
}

// stateOf reads an image manifest, and the cache config through config when
// the manifest is a registry cache's (image-manifest=true).
func stateOf(manifest []byte, config func() ([]byte, error)) (refState, error) {
	s := refState{layers: map[digest.Digest]int64{}}
	m, err := v1.ParseManifest(bytes.NewReader(manifest))
	if err != nil {
		return s, err
	}
	for _, l := range m.Layers {
		s.layers[digest.Digest(l.Digest.String())] = l.Size
	}
	if m.Config.MediaType != cacheimporttypes.CacheConfigMediaTypeV0 {
		return s, nil
	}
	raw, err := config()
	if err != nil {
		return s, fmt.Errorf("cache config: %w", err)
	}
	s.cache = &cacheimporttypes.CacheConfig{}
	if err := json.Unmarshal(raw, s.cache); err != nil {
		return s, fmt.Errorf("cache config: %w", err)
	}
	return s, nil
}

// measureFloor measures j; for the action it also computes the build's floor,
// reading the refs it imports before it runs and what it pushed after.
func (b *bench) measureFloor(ctx context.Context, j job) (sample, error) {
	if j.tool != toolAction {
		return b.measure(ctx, j)
	}
	before := map[string]refState{}
	tags, err := teststack.Tags(b.s.Registry + "/" + j.repo)
	if err != nil && !strings.Contains(err.Error(), "NAME_UNKNOWN") {
		return sample{}, fmt.Errorf("list %s: %w", j.repo, err)
	}
	for _, t := range tags {
		ref := b.s.Registry + "/" + j.repo + ":" + t
		if before[ref], err = readRef(ref); err != nil {
			return sample{}, err
		}
	}
	smp, err := b.measure(ctx, j)
	if err != nil {
		return smp, err
	}
	var imported []refState
	for _, ref := range smp.imports {
		imported = append(imported, before[ref])
	}
	baseImage, err := readRef(b.s.BaseImage)
	if err != nil {
		return smp, err
	}
	image, err := readRef(j.imageRef(b.s.Registry))
	if err != nil {
		return smp, err
	}
	exported, err := readRef(smp.cacheRef)
	if err != nil {
		return smp, err
	}
	f := floorOf(imported, baseImage, image, exported)
	smp.floor = &f
	return smp, nil
}

// bandwidth is the registry's loopback throughput, bytes per second: a
// monolithic blob upload (POST, then PUT of the bytes) and a GET of a blob of
// known size, the median of three each.
type bandwidth struct {
	up, down float64
	size     int64
}

const bandwidthBlob = 64 << 20

func (b *bench) measureBandwidth(ctx context.Context) (bandwidth, error) {
	c := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: time.Minute}
	rng := rand.New(rand.NewChaCha8([32]byte{})) //nolint:gosec // G404: incompressible test bytes, not a secret
	blob := make([]byte, bandwidthBlob)
	var ups, downs []float64
	for range 3 {
		for k := range blob {
			blob[k] = byte(rng.Uint32())
		}
		dg := digest.FromBytes(blob)
		repo := fmt.Sprintf("http://%s/v2/bench/bandwidth", b.s.Registry)
		start := time.Now()
		resp, _, err := do(ctx, c, http.MethodPost, repo+"/blobs/uploads/", nil, http.StatusAccepted)
		if err != nil {
			return bandwidth{}, err
		}
		loc := resp.Header.Get("Location")
		if !strings.HasPrefix(loc, "http") {
			loc = "http://" + b.s.Registry + loc
		}
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		if _, _, err := do(ctx, c, http.MethodPut, loc+sep+"digest="+dg.String(), blob, http.StatusCreated); err != nil {
			return bandwidth{}, err
		}
		ups = append(ups, float64(len(blob))/time.Since(start).Seconds())
		start = time.Now()
		if _, _, err := do(ctx, c, http.MethodGet, repo+"/blobs/"+dg.String(), nil, http.StatusOK); err != nil {
			return bandwidth{}, err
		}
		downs = append(downs, float64(len(blob))/time.Since(start).Seconds())
	}
	return bandwidth{up: median(ups), down: median(downs), size: bandwidthBlob}, nil
}

// do sends one request and reads the whole response, which must have status want.
func do(ctx context.Context, c *http.Client, method, url string, body []byte, want int) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	if resp.StatusCode != want {
		return nil, nil, fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return resp, got, nil
}
