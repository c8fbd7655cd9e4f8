package cachemount

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/klauspost/compress/zstd"
)

// HelperCommand is the first argument that makes the action's binary the
// helper: the process BuildKit runs in an exec with the cache mounts mounted.
// It reads one JSON request argument and writes result.json to the request's
// output directory.
const HelperCommand = "__cache-mounts"

// helperRequest is what the exec asks of the helper.
type helperRequest struct {
	Op     string        `json:"op"` // "seed" or "save"
	In     string        `json:"in,omitempty"`
	Out    string        `json:"out"`
	Mounts []helperMount `json:"mounts"`
	Max    int64         `json:"max,omitempty"` // save: the largest tar stored, in bytes
}

type helperMount struct {
	Dir string `json:"dir"`
	// Blob is the file under In to seed from ("" for none: seed only tells
	// whether the mount is empty).
	Blob string `json:"blob,omitempty"`
	// Max bounds the tar extracted from Blob, in bytes.
	Max int64 `json:"max,omitempty"`
	// Prev is the content digest of the imported contents ("" for none).
	Prev string `json:"prev,omitempty"`
}

// Mount states the helper reports.
const (
	stateSeeded    = "seeded"    // extracted into the empty mount
	stateNotEmpty  = "not-empty" // the builder kept the mount: left as it was
	stateUnchanged = "unchanged" // the content digest is the imported one
	stateChanged   = "changed"   // written to Blob
	stateEmpty     = "empty"     // nothing to store (save), or nothing to seed into an empty mount (seed)
	stateTooBig    = "too-big"   // over Max: not written (save), or not extracted and left empty (seed)
	stateDamaged   = "damaged"   // seed: Blob could not be extracted (Error says why); left empty
)

type helperResult struct {
	Mounts []mountResult `json:"mounts"`
}

type mountResult struct {
	State   string `json:"state"`
	Entries int    `json:"entries"`
	// Digest is the content digest: the sha256 of the tar without times.
	Digest string `json:"digest,omitempty"`
	Size   int64  `json:"size"` // the tar's size
	// Blob, BlobDigest and BlobSize describe the zstd-compressed tar written
	// for a changed mount.
	Blob       string `json:"blob,omitempty"`
	BlobDigest string `json:"blobDigest,omitempty"`
	BlobSize   int64  `json:"blobSize,omitempty"`
	// Error is why a blob is damaged.
	Error string `json:"error,omitempty"`
	// Millis is how long the extraction took.
	Millis int64 `json:"millis,omitempty"`
}

// HelperMain runs the helper with the arguments after HelperCommand and
// returns the process's exit code.
func HelperMain(args []string) int {
	if err := helper(args); err != nil {
		fmt.Fprintf(os.Stderr, "ecr-build-cache %s: %v\n", HelperCommand, err)
		return 1
	}
	return 0
}

func helper(args []string) error {
	if len(args) != 1 {
		return errors.New("want one JSON request argument")
	}
	var req helperRequest
	if err := json.Unmarshal([]byte(args[0]), &req); err != nil {
		return fmt.Errorf("read the request: %w", err)
	}
	var res helperResult
	for _, m := range req.Mounts {
		var r mountResult
		var err error
		switch req.Op {
		case "seed":
			r, err = seedMount(req.In, m)
		case "save":
			r, err = saveMount(m, req.Out, req.Max, len(res.Mounts))
		default:
			return fmt.Errorf("unknown op %q", req.Op)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", req.Op, m.Dir, err)
		}
		res.Mounts = append(res.Mounts, r)
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(req.Out, "result.json"), b, 0o644)
}

// seedMount extracts m's blob into m.Dir when m.Dir is empty. A blob that
// cannot be extracted whole (damaged, or past m.Max) is that mount's problem
// alone: what it extracted is removed, so the build never sees half a cache,
// and the mount starts empty.
func seedMount(in string, m helperMount) (mountResult, error) {
	entries, err := os.ReadDir(m.Dir)
	switch {
	case err != nil:
		return mountResult{}, err
	case len(entries) > 0:
		return mountResult{State: stateNotEmpty}, nil
	case m.Blob == "":
		return mountResult{State: stateEmpty}, nil
	}
	start := time.Now()
	n, size, err := extractBlob(filepath.Join(in, m.Blob), m.Dir, m.Max)
	if err == nil {
		return mountResult{State: stateSeeded, Entries: n, Size: size, Millis: time.Since(start).Milliseconds()}, nil
	}
	if cerr := removeContents(m.Dir); cerr != nil {
		return mountResult{}, errors.Join(err, cerr)
	}
	if errors.Is(err, errTooBig) {
		return mountResult{State: stateTooBig, Size: m.Max}, nil
	}
	return mountResult{State: stateDamaged, Error: err.Error()}, nil
}

// maxWindow bounds the memory a zstd frame may ask of the decoder: far above
// the 8 MiB window compress writes, far below what a crafted header can claim.
const maxWindow = 64 << 20

// extractBlob extracts the zstd-compressed tar at blob into dir, at most
// limit bytes of it, and returns its entries and the tar's size.
func extractBlob(blob, dir string, limit int64) (int, int64, error) {
	f, err := os.Open(blob)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	zr, err := zstd.NewReader(f, zstd.WithDecoderMaxWindow(maxWindow))
	if err != nil {
		return 0, 0, err
	}
	defer zr.Close()
	cr := &countingReader{r: zr}
	n, err := extract(cr, dir, limit)
	return n, cr.n, err
}

// removeContents removes everything under dir, keeping dir.
func removeContents(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	return errors.Join(errs...)
}

// saveMount computes dir's content digest and, when it differs from m.Prev
// and the tar fits limit (0: no limit), writes the compressed tar to out as
// <index>.tar.zst. A mount over the limit is not read past it.
func saveMount(m helperMount, out string, limit int64, index int) (mountResult, error) {
	h := sha256.New()
	cw := &countingWriter{w: h, limit: limit}
	n, err := writeTar(cw, m.Dir, false)
	r := mountResult{Entries: n, Size: cw.n}
	switch {
	case errors.Is(err, errTooBig):
		r.State = stateTooBig
		return r, nil
	case err != nil:
		return r, err
	}
	r.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	switch {
	case r.Digest == m.Prev:
		r.State = stateUnchanged
	case n == 0:
		r.State = stateEmpty
	default:
		r.State = stateChanged
		r.Blob = strconv.Itoa(index) + ".tar.zst"
		err = compress(m.Dir, filepath.Join(out, r.Blob), &r)
	}
	return r, err
}

// compress writes dir's tar, with times, zstd-compressed to path, and records
// the blob's digest and size.
func compress(dir, path string, r *mountResult) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	blobHash := sha256.New()
	blob := &countingWriter{w: io.MultiWriter(f, blobHash)}
	zw, err := zstd.NewWriter(blob)
	if err != nil {
		return err
	}
	if _, err := writeTar(zw, dir, true); err != nil {
		zw.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	r.BlobDigest = "sha256:" + hex.EncodeToString(blobHash.Sum(nil))
	r.BlobSize = blob.n
	return f.Close()
}

// errTooBig stops a tar at the size limit.
var errTooBig = errors.New("over the size limit")

// countingWriter counts what it passes on and fails past limit (0: none).
type countingWriter struct {
	w     io.Writer
	n     int64
	limit int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.limit > 0 && c.n+int64(len(p)) > c.limit {
		c.n += int64(len(p))
		return 0, errTooBig
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// countingReader counts what it reads and fails past limit (0: none).
type countingReader struct {
	r     io.Reader
	n     int64
	limit int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.limit > 0 && c.n > c.limit {
		return n, errTooBig
	}
	return n, err
}
