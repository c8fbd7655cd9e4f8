package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// traffic is what the registry served between two marks of its access log.
type traffic struct {
	requests      int   // every request, any method
	getBytes      int64 // response bytes of successful GETs (HEAD sizes are headers only)
	blobGetBytes  int64 // the part of getBytes that were blobs (layers, configs)
	probeRequests int   // requests made by go-containerregistry: the action's own ref probes
}

// regLog reads the registry's access log. Distribution 2.8 writes one line in
// combined log format per request, after the response, interleaved with its
// own logfmt lines:
//
//	127.0.0.1 - - [27/Nov/2026:00:13:44 +0000] "GET /v2/app/blobs/sha256:... HTTP/1.1" 200 3501 "" "buildkit/v0.0-dev"
type regLog struct {
	path, registry string
	n              int
	client         *http.Client
}

var accessLine = regexp.MustCompile(`^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-) "[^"]*" "([^"]*)"`)

func newRegLog(path, registry string) *regLog {
	// No proxy from the environment: the bench only ever talks to 127.0.0.1.
	return &regLog{path: path, registry: registry, client: &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}}
}

// mark returns a log offset after which every earlier request is logged: it
// sends a sentinel request and waits for its line, since a line is written only
// after its response went out (a tool can exit before its last line lands).
func (l *regLog) mark(ctx context.Context) (int64, error) {
	l.n++
	id := "bench-mark=" + strconv.Itoa(l.n)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+l.registry+"/v2/?"+id, nil)
	if err != nil {
		return 0, err
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("registry mark: %w", err)
	}
	resp.Body.Close()
	for range 200 {
		b, err := os.ReadFile(l.path)
		if err != nil {
			return 0, err
		}
		if i := bytes.Index(b, []byte(id+" ")); i >= 0 {
			return int64(i + bytes.IndexByte(b[i:], '\n') + 1), nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, fmt.Errorf("registry mark %s never reached %s", id, l.path)
}

// between sums the requests logged between two marks, sentinels excluded.
func (l *regLog) between(from, to int64) (traffic, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return traffic{}, err
	}
	defer f.Close()
	if _, err := f.Seek(from, 0); err != nil {
		return traffic{}, err
	}
	var t traffic
	sc := bufio.NewScanner(io.LimitReader(f, to-from))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := accessLine.FindStringSubmatch(sc.Text())
		if m == nil || strings.Contains(m[2], "bench-mark=") {
			continue
		}
		t.requests++
		if strings.Contains(m[5], "go-containerregistry") {
			t.probeRequests++
		}
		status, _ := strconv.Atoi(m[3])
		size, _ := strconv.ParseInt(m[4], 10, 64)
		if m[1] == http.MethodGet && status < 300 {
			t.getBytes += size
			if strings.Contains(m[2], "/blobs/") {
				t.blobGetBytes += size
			}
		}
	}
	return t, sc.Err()
}
