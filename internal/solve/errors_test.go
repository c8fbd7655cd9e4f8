package solve

import (
	"errors"
	"testing"
)

// Push errors as BuildKit v0.34 reports them (from the fault proxy and the
// stack's registry), and whether another attempt may get past them.
func TestPushErrorClassification(t *testing.T) {
	t.Parallel()
	const push = "failed to solve: failed to push 127.0.0.1:44351/app:latest: "
	for _, tc := range []struct {
		msg                string
		retryable, content bool
	}{
		{push + "toomanyrequests: faultproxy: injected 429 Too Many Requests", true, false},
		{push + "unexpected status from PUT request to http://127.0.0.1:44351/v2/app/manifests/latest: 503 Service Unavailable: <html>oops</html>", true, false},
		{push + "unexpected status from PUT request to http://127.0.0.1:44351/v2/app/manifests/latest: 502 Bad Gateway:  ", true, false},
		{push + "unknown: faultproxy: injected 500 Internal Server Error", true, false},
		{push + "errors:\nunknown: provided digest did not match uploaded content\nunknown: blob unknown to registry - sha256:a25657c06e4d3fcb2ba1f8c9b329cb516fa55c77186aa26fbfb32c66b967af8e\n", true, false},
		{push + "unexpected status from PUT request to http://127.0.0.1:44351/v2/app/blobs/uploads/x?digest=sha256:a: 400 Bad Request: blob upload invalid", true, false},
		{push + "denied: requested access to the resource is denied", false, false},
		{push + "name unknown: The repository with name 'app' does not exist in the registry with id '123456789012'", false, false},
		{push + "failed to copy: httpReadSeeker: failed open: could not fetch content descriptor " +
			"sha256:c0109e9a5a46d70fc54b66b9f73f157e78953d5663dad61bc824fef294225bad (application/vnd.oci.image.layer.v1.tar+gzip) from remote: not found", false, true},
	} {
		err := errors.New(tc.msg)
		if Retryable(err) != tc.retryable || ContentUnavailable(err) != tc.content {
			t.Errorf("%s: Retryable %v, ContentUnavailable %v; want %v, %v", tc.msg, Retryable(err), ContentUnavailable(err), tc.retryable, tc.content)
		}
	}
}
