// Package githubapi is the small part of the GitHub REST API the action asks:
// one GET per question, with the job's token, under a deadline, never
// retried (a rate limit or an outage fails the question, and the caller
// decides closed). GITHUB_API_URL is honoured, so GitHub Enterprise Server
// works. Each endpoint is one method over get.
package githubapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultURL is GitHub.com's API, when GITHUB_API_URL is not set.
const DefaultURL = "https://api.github.com"

// Timeout bounds one request, connection to body.
const Timeout = 15 * time.Second

// ErrNotFound is a 404: the branch (or repository) does not exist, or the
// token may not see it.
var ErrNotFound = errors.New("not found")

// Client asks the GitHub REST API as one token.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// New returns a client for the API at apiURL ("" means DefaultURL) that
// authenticates with token.
func New(apiURL, token string) (*Client, error) {
	if apiURL == "" {
		apiURL = DefaultURL
	}
	u, err := url.Parse(strings.TrimSuffix(apiURL, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("GITHUB_API_URL %q is not an http(s) URL", apiURL)
	}
	return &Client{base: u, token: token, http: &http.Client{
		Timeout: Timeout,
		// A redirect (a renamed branch answers 301) is an answer about
		// another name than the one asked: not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// BranchHead is the commit at the head of branch in repo ("owner/name"):
// GET /repos/{owner}/{repo}/branches/{branch}.
func (c *Client) BranchHead(ctx context.Context, repo, branch string) (string, error) {
	p, err := repoPath(repo)
	if err != nil {
		return "", err
	}
	var b struct {
		Commit struct {
			SHA string `json:"sha"`
		} `json:"commit"`
	}
	if err := c.get(ctx, p+"/branches/"+url.PathEscape(branch), &b); err != nil {
		return "", fmt.Errorf("get branch %q of %s: %w", branch, repo, err)
	}
	if b.Commit.SHA == "" {
		return "", fmt.Errorf("get branch %q of %s: the answer names no commit", branch, repo)
	}
	return b.Commit.SHA, nil
}

// MergedPulls are the numbers of the merged pull requests that brought commit
// sha into the default branch: GET /repos/{owner}/{repo}/commits/{sha}/pulls
// (a rebase merge's commits name no pull request in their messages).
func (c *Client) MergedPulls(ctx context.Context, repo, sha string) ([]int, error) {
	p, err := repoPath(repo)
	if err != nil {
		return nil, err
	}
	var pulls []struct {
		Number   int     `json:"number"`
		MergedAt *string `json:"merged_at"`
	}
	if err := c.get(ctx, p+"/commits/"+url.PathEscape(sha)+"/pulls", &pulls); err != nil {
		return nil, fmt.Errorf("list the pull requests of commit %s of %s: %w", sha, repo, err)
	}
	var nums []int
	for _, pr := range pulls {
		if pr.MergedAt != nil && pr.Number > 0 {
			nums = append(nums, pr.Number)
		}
	}
	return nums, nil
}

// repoPath is /repos/{owner}/{repo}, escaped.
func repoPath(repo string) (string, error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return "", fmt.Errorf("repository %q (GITHUB_REPOSITORY) is not owner/name", repo)
	}
	return "/repos/" + url.PathEscape(owner) + "/" + url.PathEscape(name), nil
}

// get GETs path (escaped, under the API's base) and decodes the JSON answer
// into v.
func (c *Client) get(ctx context.Context, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.Header.Set("User-Agent", "ecr-build-cache")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return ErrNotFound
	case resp.StatusCode != http.StatusOK:
		var e struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(body, &e) // the message only explains the status
		return fmt.Errorf("%s: %s", resp.Status, oneLine(e.Message))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode the answer: %w", err)
	}
	return nil
}

// oneLine keeps an API message on one log line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
