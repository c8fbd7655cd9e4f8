package main

import (
	"io"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// connProxy forwards its own unix socket to buildkitd's and records when the
// first client connected and when buildkitd last sent anything. Every tool
// under test talks to buildkitd through one, so its start-up (process start to
// first BuildKit call; gRPC dials eagerly when the client is created) and its
// tail (last BuildKit reply to exit) are measured the same way for all.
type connProxy struct {
	ln     net.Listener
	target string // socket path of buildkitd
	first  atomic.Int64
	last   atomic.Int64
	wg     sync.WaitGroup
}

var proxySeq atomic.Int64

func newConnProxy(dir, buildkitAddr string) (*connProxy, error) {
	path := filepath.Join(dir, "bk"+strconv.FormatInt(proxySeq.Add(1), 10)+".sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	p := &connProxy{ln: ln, target: buildkitAddr[len("unix://"):]}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *connProxy) addr() string { return "unix://" + p.ln.Addr().String() }

// firstConnect is when the first client connected; zero if none did.
func (p *connProxy) firstConnect() time.Time {
	if n := p.first.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// lastReply is when buildkitd last sent bytes to the client; zero if never.
func (p *connProxy) lastReply() time.Time {
	if n := p.last.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

func (p *connProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.first.CompareAndSwap(0, time.Now().UnixNano())
		go p.pipe(c)
	}
}

func (p *connProxy) pipe(c net.Conn) {
	defer c.Close()
	u, err := net.Dial("unix", p.target)
	if err != nil {
		return
	}
	defer u.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(stamped{c, &p.last}, u); done <- struct{}{} }()
	<-done // either side hung up: the deferred closes end the other copy
}

// close stops accepting; connections end when their client exits.
func (p *connProxy) close() {
	p.ln.Close()
	p.wg.Wait()
}

// stamped records the time of every write.
type stamped struct {
	w  io.Writer
	at *atomic.Int64
}

func (s stamped) Write(b []byte) (int, error) {
	s.at.Store(time.Now().UnixNano())
	return s.w.Write(b)
}
