package fakeecr

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// targetPrefix is the X-Amz-Target service name of the ECR API.
const targetPrefix = "AmazonEC2ContainerRegistry_V20150921."

// apiError is an AWS JSON 1.1 error: the SDK picks the error type from
// "__type" and the text from "message".
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) write(w http.ResponseWriter) {
	body := map[string]string{"__type": e.code}
	if e.message != "" {
		body["message"] = e.message
	}
	writeAPIJSON(w, e.status, body)
}

func (s *Server) apiHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.handleAPI(w, r); err != nil {
			err.write(w)
		}
	})
}

func (s *Server) handleAPI(w http.ResponseWriter, r *http.Request) *apiError {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.Method != http.MethodPost || r.URL.Path != "/" || !ok || ct != "application/x-amz-json-1.1" {
		return &apiError{status: http.StatusBadRequest, code: "UnknownOperationException"}
	}
	if err := s.checkSigV4(r.Header.Get("Authorization")); err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return &apiError{status: http.StatusBadRequest, code: "SerializationException", message: err.Error()}
	}
	switch op {
	case "GetAuthorizationToken":
		return s.getAuthorizationToken(w)
	case "DescribeRepositories":
		return s.describeRepositories(w, body)
	case "ListImages":
		return s.listImages(w, r, body)
	case "DescribeImages":
		return s.describeImages(w, r, body)
	case "BatchDeleteImage":
		return s.batchDeleteImage(w, r, body)
	default:
		return &apiError{status: http.StatusBadRequest, code: "UnknownOperationException"}
	}
}

// checkSigV4 checks the shape of a SigV4 Authorization header and that it
// names the configured access key, region and the ecr service. The signature
// itself is not verified: the double knows no secret key.
func (s *Server) checkSigV4(auth string) *apiError {
	if auth == "" {
		return &apiError{http.StatusBadRequest, "MissingAuthenticationTokenException", "Missing Authentication Token"}
	}
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	fields := map[string]string{}
	for _, f := range strings.Split(rest, ",") {
		if k, v, found := strings.Cut(strings.TrimSpace(f), "="); found {
			fields[k] = v
		}
	}
	scope := strings.Split(fields["Credential"], "/")
	if !ok || fields["SignedHeaders"] == "" || fields["Signature"] == "" ||
		len(scope) != 5 || scope[4] != "aws4_request" {
		return &apiError{http.StatusBadRequest, "IncompleteSignatureException",
			"Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters."}
	}
	switch {
	case scope[0] != s.cfg.AccessKeyID:
		return &apiError{http.StatusBadRequest, "UnrecognizedClientException",
			"The security token included in the request is invalid."}
	case scope[2] != s.cfg.Region:
		return &apiError{http.StatusBadRequest, "InvalidSignatureException",
			fmt.Sprintf("Credential should be scoped to a valid region, not '%s'. ", scope[2])}
	case scope[3] != "ecr":
		return &apiError{http.StatusBadRequest, "InvalidSignatureException",
			"Credential should be scoped to correct service: 'ecr'. "}
	}
	return nil
}

func (s *Server) accessDenied(action, resource string) *apiError {
	return &apiError{http.StatusBadRequest, "AccessDeniedException", fmt.Sprintf(
		"User: arn:aws:iam::%s:user/fakeecr is not authorized to perform: %s on resource: %s because no identity-based policy allows the %s action",
		s.cfg.AccountID, action, resource, action)}
}

type authorizationData struct {
	AuthorizationToken string      `json:"authorizationToken"`
	ExpiresAt          json.Number `json:"expiresAt"`
	ProxyEndpoint      string      `json:"proxyEndpoint"`
}

// getAuthorizationToken ignores the deprecated registryIds: one token works
// for every registry, and this double has one.
func (s *Server) getAuthorizationToken(w http.ResponseWriter) *apiError {
	s.mu.Lock()
	s.tokenCalls++
	s.mu.Unlock()
	if s.cfg.DenyToken {
		return s.accessDenied("ecr:GetAuthorizationToken", "*")
	}
	pw, exp := s.issuePassword()
	writeAPIJSON(w, http.StatusOK, map[string][]authorizationData{"authorizationData": {{
		AuthorizationToken: base64.StdEncoding.EncodeToString([]byte("AWS:" + pw)),
		ExpiresAt:          epochSeconds(exp),
		ProxyEndpoint:      s.RegistryURL,
	}}})
	return nil
}

type repositoryJSON struct {
	CreatedAt               json.Number `json:"createdAt"`
	EncryptionConfiguration struct {
		EncryptionType string `json:"encryptionType"`
	} `json:"encryptionConfiguration"`
	ImageScanningConfiguration struct {
		ScanOnPush bool `json:"scanOnPush"`
	} `json:"imageScanningConfiguration"`
	ImageTagMutability                 string                `json:"imageTagMutability"`
	ImageTagMutabilityExclusionFilters []exclusionFilterJSON `json:"imageTagMutabilityExclusionFilters,omitempty"`
	RegistryID                         string                `json:"registryId"`
	RepositoryArn                      string                `json:"repositoryArn"`
	RepositoryName                     string                `json:"repositoryName"`
	RepositoryURI                      string                `json:"repositoryUri"`
}

type exclusionFilterJSON struct {
	Filter     string `json:"filter"`
	FilterType string `json:"filterType"`
}

// describeRepositories returns every match in one page: maxResults and
// nextToken are ignored.
func (s *Server) describeRepositories(w http.ResponseWriter, body []byte) *apiError {
	var in struct {
		RegistryID      string   `json:"registryId"`
		RepositoryNames []string `json:"repositoryNames"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return &apiError{status: http.StatusBadRequest, code: "SerializationException", message: err.Error()}
	}
	if s.cfg.DenyDescribe {
		resource := s.repositoryArn("*")
		if len(in.RepositoryNames) > 0 {
			resource = s.repositoryArn(in.RepositoryNames[0])
		}
		return s.accessDenied("ecr:DescribeRepositories", resource)
	}
	registryID := s.cfg.AccountID
	if in.RegistryID != "" {
		registryID = in.RegistryID
	}
	names := in.RepositoryNames
	if len(names) == 0 && registryID == s.cfg.AccountID {
		for name := range s.repos {
			names = append(names, name)
		}
		slices.Sort(names)
	}
	out := []repositoryJSON{}
	for _, name := range names {
		repo, ok := s.repos[name]
		if !ok || registryID != s.cfg.AccountID {
			return &apiError{http.StatusBadRequest, "RepositoryNotFoundException", fmt.Sprintf(
				"The repository with name '%s' does not exist in the registry with id '%s'", name, registryID)}
		}
		out = append(out, s.repositoryJSON(repo))
	}
	writeAPIJSON(w, http.StatusOK, map[string][]repositoryJSON{"repositories": out})
	return nil
}

func (s *Server) repositoryJSON(r Repository) repositoryJSON {
	j := repositoryJSON{
		CreatedAt:          epochSeconds(s.created),
		ImageTagMutability: r.Mutability,
		RegistryID:         s.cfg.AccountID,
		RepositoryArn:      s.repositoryArn(r.Name),
		RepositoryName:     r.Name,
		RepositoryURI:      s.RegistryHost + "/" + r.Name,
	}
	j.EncryptionConfiguration.EncryptionType = "AES256"
	for _, f := range r.ExclusionFilters {
		j.ImageTagMutabilityExclusionFilters = append(j.ImageTagMutabilityExclusionFilters,
			exclusionFilterJSON{Filter: f, FilterType: "WILDCARD"})
	}
	return j
}

func (s *Server) repositoryArn(name string) string {
	return fmt.Sprintf("arn:aws:ecr:%s:%s:repository/%s", s.cfg.Region, s.cfg.AccountID, name)
}

// epochSeconds formats t as AWS JSON timestamps go on the wire: a number of
// seconds since the epoch, with milliseconds.
func epochSeconds(t time.Time) json.Number {
	return json.Number(strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64))
}

func writeAPIJSON(w http.ResponseWriter, status int, v any) {
	id := make([]byte, 16)
	rand.Read(id) // never fails (crypto/rand)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-RequestId", fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:]))
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // plain structs always encode; a write error means the client went away
}
