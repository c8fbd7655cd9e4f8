package cachemount

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// writeTar writes the tree under dir to w as a deterministic tar: entries in
// lexical order, numeric owners without names, times in whole seconds (all
// zero when !times, which makes the content digest), no extended attributes.
// Hard links are kept; sockets, pipes and devices are left out (no cache
// needs them).
// It returns the number of entries written.
func writeTar(w io.Writer, dir string, times bool) (int, error) {
	// Files are opened through root: a path swapped for a symbolic link during
	// the walk cannot make the tar read a file outside dir.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{} // (device, inode) of a file with several links -> its first name
	n := 0
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no owner information", p)
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), Mode: tarMode(fi.Mode()), Uid: int(st.Uid), Gid: int(st.Gid)}
		if times {
			h.ModTime = time.Unix(fi.ModTime().Unix(), 0)
		} else {
			h.ModTime = time.Unix(0, 0)
		}
		switch {
		case fi.Mode().IsDir():
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		case fi.Mode()&fs.ModeSymlink != 0:
			// No time: extract cannot set a symbolic link's own (os.Root has no
			// Lchtimes), and no cache reads it.
			h.Typeflag, h.ModTime = tar.TypeSymlink, time.Unix(0, 0)
			if h.Linkname, err = os.Readlink(p); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			h.Typeflag, h.Size = tar.TypeReg, fi.Size()
			if st.Nlink > 1 {
				id := [2]uint64{uint64(st.Dev), st.Ino}
				if first, ok := links[id]; ok {
					h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
				} else {
					links[id] = h.Name
				}
			}
		default:
			return nil // sockets, pipes and devices
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		n++
		if h.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := root.Open(rel)
		if err != nil {
			return err
		}
		defer f.Close()
		// Exactly the size in the header: a file that grows meanwhile must not break the tar.
		_, err = io.Copy(tw, io.LimitReader(f, h.Size))
		return err
	})
	if err != nil {
		return n, err
	}
	return n, tw.Close()
}

func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

func fileMode(h *tar.Header) fs.FileMode {
	m := fs.FileMode(h.Mode).Perm()
	if h.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if h.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if h.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// errUnsafe is an archive entry that would land outside the directory.
var errUnsafe = errors.New("unsafe path")

// extract unpacks a tar written by writeTar into dir, which must be empty.
// Every file operation goes through an os.Root, so no entry (a "../" name, or
// a path through a symbolic link it made) can reach outside dir. It stops
// with errTooBig past limit bytes of tar stream or of file contents (sparse
// entries expand past their stream), so a small blob cannot fill the
// builder's disk. It returns the number of entries.
func extract(r io.Reader, dir string, limit int64) (int, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	r = &countingReader{r: r, limit: limit}
	written := &countingWriter{w: io.Discard, limit: limit}
	type dirTime struct {
		name string
		t    time.Time
	}
	var dirs []dirTime // directory times are set last: their entries change them
	tr := tar.NewReader(r)
	n := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, err
		}
		name := path.Clean(h.Name)
		if !fs.ValidPath(name) || name == "." {
			return n, fmt.Errorf("%q: %w", h.Name, errUnsafe)
		}
		if dir := path.Dir(name); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return n, err
			}
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = mkdir(root, name)
			dirs = append(dirs, dirTime{name, h.ModTime})
		case tar.TypeReg:
			err = writeFile(root, name, io.TeeReader(tr, written))
		case tar.TypeSymlink:
			err = root.Symlink(h.Linkname, name)
		case tar.TypeLink:
			err = root.Link(path.Clean(h.Linkname), name)
		default:
			continue
		}
		if err == nil {
			err = root.Lchown(name, h.Uid, h.Gid)
		}
		// The mode after the owner, for every name of a hard-linked inode too:
		// a chown clears the setuid and setgid bits an earlier name's chmod set.
		if err == nil && h.Typeflag != tar.TypeSymlink {
			err = root.Chmod(name, fileMode(h))
			if err == nil && h.Typeflag != tar.TypeDir {
				err = root.Chtimes(name, h.ModTime, h.ModTime)
			}
		}
		if errors.Is(err, errTooBig) {
			return n, err
		}
		if err != nil {
			return n, fmt.Errorf("extract %q: %w", h.Name, err)
		}
		n++
	}
	for _, d := range slices.Backward(dirs) {
		if err := root.Chtimes(d.name, d.t, d.t); err != nil {
			return n, err
		}
	}
	return n, nil
}

func writeFile(root *os.Root, name string, r io.Reader) error {
	f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// mkdir makes a directory, or keeps one an earlier entry's path made.
func mkdir(root *os.Root, name string) error {
	err := root.Mkdir(name, 0o700)
	if errors.Is(err, fs.ErrExist) {
		if fi, lerr := root.Lstat(name); lerr == nil && fi.IsDir() {
			return nil
		}
	}
	return err
}
