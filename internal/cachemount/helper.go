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
	// Blob is the file under In to seed from ("" for none).
	Blob string `json:"blob,omitempty"`
	// Prev is the content digest of the imported contents ("" for none).
	Prev string `json:"prev,omitempty"`
}

// Mount states the helper reports.
const (
	stateSeeded    = "seeded"    // extracted into the empty mount
	stateNotEmpty  = "not-empty" // the builder kept the mount: left as it was
	stateUnchanged = "unchanged" // the content digest is the imported one
	stateChanged   = "changed"   // written to Blob
	stateEmpty     = "empty"     // nothing to store
	stateTooBig    = "too-big"   // over Max: not written
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
			r, err = seedMount(filepath.Join(req.In, m.Blob), m.Dir)
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

// seedMount extracts blob into dir when dir is empty; a partial extraction
// is removed, so the build never sees half a cache.
func seedMount(blob, dir string) (mountResult, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return mountResult{}, err
	}
	if len(entries) > 0 {
		return mountResult{State: stateNotEmpty}, nil
	}
	f, err := os.Open(blob)
	if err != nil {
		return mountResult{}, err
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		return mountResult{}, err
	}
	defer zr.Close()
	cr := &countingReader{r: zr}
	n, err := extract(cr, dir)
	if err != nil {
		if cerr := removeContents(dir); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return mountResult{}, err
	}
	return mountResult{State: stateSeeded, Entries: n, Size: cr.n}, nil
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

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
