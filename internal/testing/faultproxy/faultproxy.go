// Package faultproxy injects registry and API faults in tests: an HTTP reverse
// proxy on loopback in front of a registry (Start), or a wrapper around another
// test server's handler (Wrap, e.g. fakeecr.Config.Wrap).
//
// Rules pick requests by method, path pattern and headers, and answer them the
// way a troubled service does: 429 with Retry-After (throttling), 500 or 503,
// a connection closed in the middle of an upload, a delay, or 401 once a number
// of requests went through (an expired token). Every other request passes
// unchanged. Each rule records when the requests it matched arrived, so tests
// can count attempts and check the spacing of retries.
//
//	cacheManifest := &faultproxy.Rule{Method: "PUT", Path: `^/v2/app/manifests/cache-`, Status: 429, RetryAfter: 2 * time.Second}
//	srv := faultproxy.Serve(t, "http://127.0.0.1:5000", cacheManifest) // push to srv.Host instead
//	...
//	cacheManifest.Matched() // how many cache manifest PUTs arrived
package faultproxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Rule selects requests and says what happens to them. Use rules by pointer and
// do not change them after New.
type Rule struct {
	// Method matches the request method exactly; "" matches any.
	Method string
	// Path is a regular expression searched in the URL path, e.g.
	// `^/v2/app/blobs/uploads/`; "" matches any path.
	Path string
	// Header names request headers that must carry exactly these values, e.g.
	// X-Amz-Target to pick one AWS API operation.
	Header map[string]string

	// After lets the first After matching requests through unharmed; with
	// Status 401 that is "401 after N requests".
	After int
	// Count, when positive, harms only that many requests after the first
	// After; later ones pass again. Zero harms every one.
	Count int

	// What happens to a harmed request, in this order: wait Delay; then answer
	// with Status, or drop the connection (Close), or, with neither, forward it.
	Delay time.Duration
	// Status is the response status, e.g. 429, 500, 503 or 401.
	Status int
	// RetryAfter goes with Status as the Retry-After header, in whole seconds.
	RetryAfter time.Duration
	// Body replaces the default body sent with Status: a distribution-spec
	// error, {"errors":[{"code":...,"message":"faultproxy: injected <status>"}]}.
	Body string
	// Close drops the connection without an answer, after reading up to
	// ReadBeforeClose bytes of the request body: an upload cut off midway.
	Close           bool
	ReadBeforeClose int64

	path *regexp.Regexp

	mu       sync.Mutex
	arrivals []time.Time
}

// Matched counts the requests the rule matched so far, harmed or not.
func (r *Rule) Matched() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.arrivals)
}

// Arrivals returns when each matched request arrived, oldest first.
func (r *Rule) Arrivals() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.arrivals...)
}

func (r *Rule) matches(req *http.Request) bool {
	if r.Method != "" && req.Method != r.Method {
		return false
	}
	if r.path != nil && !r.path.MatchString(req.URL.Path) {
		return false
	}
	for k, v := range r.Header {
		if req.Header.Get(k) != v {
			return false
		}
	}
	return true
}

// record counts req and reports whether the rule harms it.
func (r *Rule) record(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.arrivals = append(r.arrivals, now)
	n := len(r.arrivals) // 1-based number of this request
	return n > r.After && (r.Count <= 0 || n <= r.After+r.Count)
}

// Faults applies a list of rules.
type Faults struct {
	rules []*Rule
}

// New checks the rules. Every rule that matches a request counts it; the first
// matching rule that harms it decides what happens.
func New(rules ...*Rule) (*Faults, error) {
	for i, r := range rules {
		if r.Path != "" {
			re, err := regexp.Compile(r.Path)
			if err != nil {
				return nil, fmt.Errorf("faultproxy: rule %d: path: %w", i, err)
			}
			r.path = re
		}
		if r.Status != 0 && r.Close {
			return nil, fmt.Errorf("faultproxy: rule %d: Status and Close exclude each other", i)
		}
		if r.Status == 0 && (r.RetryAfter != 0 || r.Body != "") {
			return nil, fmt.Errorf("faultproxy: rule %d: RetryAfter and Body need a Status", i)
		}
	}
	return &Faults{rules: rules}, nil
}

// Wrap returns next with the faults applied in front of it.
func (f *Faults) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var harm *Rule
		now := time.Now()
		for _, r := range f.rules {
			if r.matches(req) && r.record(now) && harm == nil {
				harm = r
			}
		}
		if harm == nil {
			next.ServeHTTP(w, req)
			return
		}
		if harm.Delay > 0 {
			select {
			case <-time.After(harm.Delay):
			case <-req.Context().Done():
				return
			}
		}
		switch {
		case harm.Status != 0:
			harm.respond(w)
		case harm.Close:
			closeMidBody(w, req, harm.ReadBeforeClose)
		default:
			next.ServeHTTP(w, req)
		}
	})
}

func (r *Rule) respond(w http.ResponseWriter) {
	h := w.Header()
	if r.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(r.RetryAfter.Round(time.Second)/time.Second)))
	}
	if r.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Basic realm="faultproxy"`)
	}
	body := r.Body
	if body == "" {
		code := map[int]string{
			http.StatusUnauthorized:    "UNAUTHORIZED",
			http.StatusTooManyRequests: "TOOMANYREQUESTS",
		}[r.Status]
		if code == "" {
			code = "UNKNOWN"
		}
		type item struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		b, _ := json.Marshal(map[string][]item{"errors": {{code, fmt.Sprintf("faultproxy: injected %d %s", r.Status, http.StatusText(r.Status))}}})
		body = string(b)
		h.Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(r.Status)
	io.WriteString(w, body) //nolint:errcheck // a write error means the client went away; nothing to do
}

// closeMidBody reads up to n bytes of the body, then drops the connection.
func closeMidBody(w http.ResponseWriter, req *http.Request, n int64) {
	io.CopyN(io.Discard, req.Body, n) //nolint:errcheck // the client may stop sending early; what was read is all we wanted
	hj, ok := w.(http.Hijacker)
	if !ok {
		// HTTP/2 cannot hijack; aborting the handler resets the stream instead.
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

// Server is a running fault proxy. Close it when done.
type Server struct {
	// URL is "http://127.0.0.1:PORT"; Host is its host:port, for image references.
	URL, Host string
	srv       *http.Server
}

// Start serves a reverse proxy to upstream (e.g. "http://127.0.0.1:5000") with
// the faults applied, on a free loopback port.
func (f *Faults) Start(upstream string) (*Server, error) {
	up, err := url.Parse(upstream)
	if err != nil || up.Scheme == "" || up.Host == "" {
		return nil, fmt.Errorf("faultproxy: upstream %q is not an absolute URL", upstream)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			// Keep the proxy's Host: a registry builds absolute upload Locations
			// from it, so uploads come back through the proxy.
			pr.Out.Host = pr.In.Host
		},
		// A client giving up mid-request is routine here; the 502 says the rest.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	s := &Server{URL: "http://" + l.Addr().String(), Host: l.Addr().String()}
	s.srv = &http.Server{Handler: f.Wrap(proxy), ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(l) //nolint:errcheck // Serve returns ErrServerClosed once Close runs; nothing to report
	return s, nil
}

// Serve is New and Start for test t: it fails t on an error and stops the
// proxy when t ends.
func Serve(t testing.TB, upstream string, rules ...*Rule) *Server {
	t.Helper()
	f, err := New(rules...)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Start(upstream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Close stops the proxy and drops its connections.
func (s *Server) Close() error {
	if err := s.srv.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("faultproxy: close: %w", err)
	}
	return nil
}
