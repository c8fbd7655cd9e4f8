package cachemount

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// tree makes a cache-like tree: nested files, an executable, a setgid
// directory owned by another user, a symbolic and a hard link, and a setuid
// executable of another user under two names.
func tree(t *testing.T) string {
	t.Helper()
	if testing.Short() && os.Geteuid() != 0 {
		t.Skip("chowns a directory to another user, which needs root; runs in make test (skipped under -short)")
	}
	dir := t.TempDir()
	for name, body := range map[string]string{"a/b/c.txt": "c", "a/d.bin": "\x00\x01", "z": "last"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	must(t, os.Chmod(filepath.Join(dir, "a/d.bin"), 0o755))
	must(t, os.Mkdir(filepath.Join(dir, "shared"), 0o775))
	must(t, os.Chmod(filepath.Join(dir, "shared"), 0o775|os.ModeSetgid))
	must(t, os.Lchown(filepath.Join(dir, "shared"), 1000, 1000))
	must(t, os.Symlink("a/b/c.txt", filepath.Join(dir, "link")))
	must(t, os.Link(filepath.Join(dir, "z"), filepath.Join(dir, "a/hard")))
	tool := filepath.Join(dir, "bin/tool")
	must(t, os.Mkdir(filepath.Dir(tool), 0o755))
	must(t, os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755))
	must(t, os.Lchown(tool, 1000, 1000))
	must(t, os.Chmod(tool, 0o755|os.ModeSetuid|os.ModeSetgid))
	must(t, os.Link(tool, filepath.Join(dir, "bin/tool-link")))
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	must(t, os.Chtimes(filepath.Join(dir, "a/b/c.txt"), old, old))
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func tarOf(t *testing.T, dir string, times bool) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := writeTar(&b, dir, times); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A tree extracted from its tar tars to the same bytes: names, contents,
// modes, owners, links and times all come back.
func TestTarRoundTrip(t *testing.T) {
	t.Parallel()
	src := tree(t)
	want := tarOf(t, src, true)
	dst := t.TempDir()
	n, err := extract(bytes.NewReader(want), dst, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n != 11 {
		t.Errorf("extracted %d entries, want 11 (4 directories, 4 files, a symlink, 2 hard links)", n)
	}
	if got := tarOf(t, dst, true); !bytes.Equal(got, want) {
		t.Errorf("the extracted tree tars differently:\n%s\nwant\n%s", listing(t, got), listing(t, want))
	}
	if fi, err := os.Stat(filepath.Join(dst, "shared")); err != nil || fi.Mode()&os.ModeSetgid == 0 {
		t.Errorf("shared: %v, %v; want setgid kept", fi.Mode(), err)
	}
	// The link's owner is set after the first name's mode: the bits must survive it.
	for _, name := range []string{"bin/tool", "bin/tool-link"} {
		if fi, err := os.Stat(filepath.Join(dst, name)); err != nil || fi.Mode() != 0o755|os.ModeSetuid|os.ModeSetgid {
			t.Errorf("%s: %v, %v; want ugrwxr-xr-x (setuid and setgid kept)", name, fi.Mode(), err)
		}
	}
}

// The content digest is over the tar without times: touching a file changes
// the stored tar, not whether the mount counts as changed.
func TestContentDigestIgnoresTimes(t *testing.T) {
	t.Parallel()
	dir := tree(t)
	noTimes, withTimes := tarOf(t, dir, false), tarOf(t, dir, true)
	now := time.Now().Add(time.Hour)
	must(t, os.Chtimes(filepath.Join(dir, "a/b/c.txt"), now, now))
	if !bytes.Equal(tarOf(t, dir, false), noTimes) {
		t.Error("a new mtime changed the content tar")
	}
	if bytes.Equal(tarOf(t, dir, true), withTimes) {
		t.Error("a new mtime did not change the stored tar")
	}
	must(t, os.WriteFile(filepath.Join(dir, "z"), []byte("new"), 0o644))
	if bytes.Equal(tarOf(t, dir, false), noTimes) {
		t.Error("new contents did not change the content tar")
	}
}

func listing(t *testing.T, b []byte) string {
	t.Helper()
	var out []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		out = append(out, h.Name+" "+string(h.Typeflag)+" "+h.Linkname+" "+h.ModTime.String())
	}
	return strings.Join(out, "\n")
}

// A tar whose entries try to leave the mount is refused and reaches nothing
// outside it, whatever way it tries.
func TestExtractStaysInside(t *testing.T) {
	t.Parallel()
	type entry struct {
		name, link string
		typ        byte
	}
	for name, entries := range map[string][]entry{
		"dot-dot":          {{name: "../escaped", typ: tar.TypeReg}},
		"absolute":         {{name: "/escaped", typ: tar.TypeReg}},
		"through symlink":  {{name: "out", link: "..", typ: tar.TypeSymlink}, {name: "out/escaped", typ: tar.TypeReg}},
		"absolute symlink": {{name: "out", link: "/", typ: tar.TypeSymlink}, {name: "out/escaped", typ: tar.TypeReg}},
		"hard link out":    {{name: "h", link: "../victim", typ: tar.TypeLink}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			parent := t.TempDir()
			victim := filepath.Join(parent, "victim")
			must(t, os.WriteFile(victim, []byte("keep"), 0o644))
			mnt := filepath.Join(parent, "mnt")
			must(t, os.Mkdir(mnt, 0o755))
			var b bytes.Buffer
			tw := tar.NewWriter(&b)
			for _, e := range entries {
				h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644}
				if e.typ == tar.TypeReg {
					h.Size = 4
				}
				must(t, tw.WriteHeader(h))
				if e.typ == tar.TypeReg {
					tw.Write([]byte("evil"))
				}
			}
			must(t, tw.Close())
			if _, err := extract(&b, mnt, 0); err == nil {
				t.Error("extract succeeded")
			}
			for _, p := range []string{filepath.Join(parent, "escaped"), "/escaped"} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s was written", p)
				}
			}
			if got, _ := os.ReadFile(victim); string(got) != "keep" {
				t.Errorf("victim now holds %q", got)
			}
		})
	}
}

func compressed(t *testing.T, dir string) string {
	t.Helper()
	var b bytes.Buffer
	zw, err := zstd.NewWriter(&b)
	must(t, err)
	_, err = writeTar(zw, dir, true)
	must(t, err)
	must(t, zw.Close())
	blob := filepath.Join(t.TempDir(), "blob.tar.zst")
	must(t, os.WriteFile(blob, b.Bytes(), 0o644))
	return blob
}

// Seeding fills an empty mount, leaves one the builder kept alone, tells
// whether a mount with nothing to seed is empty, and leaves nothing behind
// when the blob is broken.
func TestSeedMount(t *testing.T) {
	t.Parallel()
	src := tree(t)
	in, blob := filepath.Split(compressed(t, src))

	empty := t.TempDir()
	r, err := seedMount(in, helperMount{Dir: empty, Blob: blob})
	if err != nil || r.State != stateSeeded || r.Entries != 11 {
		t.Fatalf("empty mount: %+v, %v; want seeded with 11 entries", r, err)
	}
	if !bytes.Equal(tarOf(t, empty, true), tarOf(t, src, true)) {
		t.Error("the seeded mount differs from the saved one")
	}

	kept := t.TempDir()
	must(t, os.WriteFile(filepath.Join(kept, "local"), []byte("newer"), 0o644))
	if r, err := seedMount(in, helperMount{Dir: kept, Blob: blob}); err != nil || r.State != stateNotEmpty {
		t.Errorf("non-empty mount: %+v, %v; want it kept", r, err)
	}
	if _, err := os.Stat(filepath.Join(kept, "z")); err == nil {
		t.Error("the kept mount was written to")
	}
	if r, err := seedMount(in, helperMount{Dir: kept}); err != nil || r.State != stateNotEmpty {
		t.Errorf("non-empty mount, no blob: %+v, %v; want not-empty", r, err)
	}
	if r, err := seedMount(in, helperMount{Dir: t.TempDir()}); err != nil || r.State != stateEmpty {
		t.Errorf("empty mount, no blob: %+v, %v; want empty", r, err)
	}

	b, err := os.ReadFile(filepath.Join(in, blob))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(in, "broken.tar.zst"), b[:len(b)/2], 0o644))
	partial := t.TempDir()
	if r, err := seedMount(in, helperMount{Dir: partial, Blob: "broken.tar.zst"}); err != nil || r.State != stateDamaged || r.Error == "" {
		t.Errorf("truncated blob: %+v, %v; want damaged, with why", r, err)
	}
	if left, _ := os.ReadDir(partial); len(left) != 0 {
		t.Errorf("a failed seed left %d entries", len(left))
	}
}

// A small blob that expands past the limit (a zstd bomb) stops the
// extraction there and leaves the mount empty.
func TestSeedStopsAtTheLimit(t *testing.T) {
	t.Parallel()
	const limit, expands = 1 << 20, 64 << 20
	var b bytes.Buffer
	zw, err := zstd.NewWriter(&b)
	must(t, err)
	tw := tar.NewWriter(zw)
	must(t, tw.WriteHeader(&tar.Header{Name: "small", Typeflag: tar.TypeReg, Mode: 0o644, Size: 10}))
	_, err = tw.Write([]byte("0123456789"))
	must(t, err)
	must(t, tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: expands}))
	_, err = io.Copy(tw, io.LimitReader(zeros{}, expands))
	must(t, err)
	must(t, tw.Close())
	must(t, zw.Close())
	if b.Len() > 64<<10 {
		t.Fatalf("the bomb is %d bytes compressed; want a small blob", b.Len())
	}
	in := t.TempDir()
	must(t, os.WriteFile(filepath.Join(in, "bomb.tar.zst"), b.Bytes(), 0o644))
	mnt := t.TempDir()
	r, err := seedMount(in, helperMount{Dir: mnt, Blob: "bomb.tar.zst", Max: limit})
	if err != nil || r.State != stateTooBig {
		t.Errorf("%d compressed bytes expanding to %d, limit %d: %+v, %v; want too-big", b.Len(), expands, limit, r, err)
	}
	if left, _ := os.ReadDir(mnt); len(left) != 0 {
		t.Errorf("the stopped extraction left %d entries", len(left))
	}
	// The same blob under a limit it fits seeds.
	if r, err := seedMount(in, helperMount{Dir: t.TempDir(), Blob: "bomb.tar.zst", Max: 2 * expands}); err != nil || r.State != stateSeeded {
		t.Errorf("within the limit: %+v, %v; want seeded", r, err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Saving writes a blob only for new contents within the limit, and that
// blob seeds the same tree.
func TestSaveMount(t *testing.T) {
	t.Parallel()
	src := tree(t)
	out := t.TempDir()
	r, err := saveMount(helperMount{Dir: src}, out, 1<<20, 3)
	if err != nil || r.State != stateChanged || r.Blob != "3.tar.zst" || !strings.HasPrefix(r.BlobDigest, "sha256:") {
		t.Fatalf("new contents: %+v, %v", r, err)
	}
	fi, err := os.Stat(filepath.Join(out, r.Blob))
	if err != nil || fi.Size() != r.BlobSize {
		t.Fatalf("blob: %v, %v; want %d bytes", fi, err, r.BlobSize)
	}
	seeded := t.TempDir()
	if sr, err := seedMount(out, helperMount{Dir: seeded, Blob: r.Blob}); err != nil || sr.State != stateSeeded {
		t.Fatalf("seed from the saved blob: %+v, %v", sr, err)
	}
	if !bytes.Equal(tarOf(t, seeded, true), tarOf(t, src, true)) {
		t.Error("the saved blob seeds a different tree")
	}

	again := t.TempDir()
	if u, err := saveMount(helperMount{Dir: src, Prev: r.Digest}, again, 1<<20, 0); err != nil || u.State != stateUnchanged {
		t.Errorf("same contents: %+v, %v; want unchanged", u, err)
	}
	if left, _ := os.ReadDir(again); len(left) != 0 {
		t.Error("an unchanged mount wrote a blob")
	}
	if b, err := saveMount(helperMount{Dir: src}, again, 1024, 0); err != nil || b.State != stateTooBig {
		t.Errorf("over the limit: %+v, %v; want too-big", b, err)
	}
	if e, err := saveMount(helperMount{Dir: t.TempDir()}, again, 0, 0); err != nil || e.State != stateEmpty {
		t.Errorf("empty mount: %+v, %v; want empty", e, err)
	}
	if _, err := saveMount(helperMount{Dir: filepath.Join(src, "missing")}, again, 0, 0); err == nil || errors.Is(err, errTooBig) {
		t.Errorf("missing mount: %v; want an error", err)
	}
}
