// Package registryauth answers "which credentials for this registry host?" for
// both BuildKit (as a session attachable, so nothing is written to disk) and the
// action's own registry calls (as a go-containerregistry keychain).
//
// Hosts with an explicit source (ECR, or the username/password inputs) use it; any
// other host falls back to the user's docker config, read and never written.
package registryauth

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
)

// Credentials are a username and password for one registry.
type Credentials struct {
	Username, Password string
}

// Source produces credentials for a host, refreshing them as it sees fit.
type Source func(ctx context.Context) (Credentials, error)

// Static is a Source that always returns c.
func Static(c Credentials) Source {
	return func(context.Context) (Credentials, error) { return c, nil }
}

// Store maps registry hosts to credential sources.
type Store struct {
	mu              sync.Mutex
	sources         map[string]Source
	dockerConfigDir string
	dockerConfig    *configfile.ConfigFile
	only            map[string]bool // when set, every other host is anonymous
}

// New returns a store that falls back to the docker config in dockerConfigDir
// ("" = docker's default, $DOCKER_CONFIG or ~/.docker).
func New(dockerConfigDir string) *Store {
	return &Store{sources: map[string]Source{}, dockerConfigDir: dockerConfigDir}
}

// Restrict makes every host but hosts anonymous: an untrusted build gets no
// credentials it does not need.
func (s *Store) Restrict(hosts ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.only = map[string]bool{}
	for _, h := range hosts {
		s.only[h] = true
	}
}

// Set makes src the source for host (host[:port], as in an image reference).
func (s *Store) Set(host string, src Source) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sources[host] = src
}

// Lookup returns the credentials for host; empty credentials mean anonymous.
func (s *Store) Lookup(ctx context.Context, host string) (Credentials, error) {
	s.mu.Lock()
	src, ok := s.sources[host]
	denied := s.only != nil && !s.only[host]
	s.mu.Unlock()
	if denied {
		return Credentials{}, nil
	}
	if ok {
		c, err := src(ctx)
		if err != nil {
			return Credentials{}, fmt.Errorf("credentials for %s: %w", host, err)
		}
		return c, nil
	}
	cf, err := s.loadDockerConfig()
	if err != nil {
		return Credentials{}, err
	}
	key := host
	if host == authprovider.DockerHubRegistryHost || host == "index.docker.io" {
		key = authprovider.DockerHubConfigfileKey // docker login stores Docker Hub under its v1 URL
	}
	ac, err := cf.GetAuthConfig(key)
	if err != nil {
		return Credentials{}, fmt.Errorf("docker config credentials for %s: %w", host, err)
	}
	if ac.IdentityToken != "" {
		return Credentials{Username: ac.Username, Password: ac.IdentityToken}, nil
	}
	return Credentials{Username: ac.Username, Password: ac.Password}, nil
}

func (s *Store) loadDockerConfig() (*configfile.ConfigFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dockerConfig == nil {
		cf, err := config.Load(s.dockerConfigDir)
		if err != nil {
			return nil, fmt.Errorf("read docker config: %w", err)
		}
		s.dockerConfig = cf
	}
	return s.dockerConfig, nil
}

// Attachable hands the store to buildkitd through the build session.
func (s *Store) Attachable() session.Attachable {
	return authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
		AuthConfigProvider: func(ctx context.Context, host string, _ []string, _ authprovider.ExpireCachedAuthCheck) (types.AuthConfig, error) {
			c, err := s.Lookup(ctx, host)
			if err != nil {
				return types.AuthConfig{}, err
			}
			return types.AuthConfig{Username: c.Username, Password: c.Password, ServerAddress: host}, nil
		},
		// Sources cache and refresh themselves (an ECR token lives 12 h); asking
		// again every minute keeps a refreshed token flowing into long builds.
		ExpireCachedAuth: func(created time.Time, _ string) bool { return time.Since(created) > time.Minute },
	})
}

// Resolve lets go-containerregistry clients use the store as a keychain.
func (s *Store) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return s.ResolveContext(context.Background(), r)
}

// ResolveContext implements authn.ContextKeychain.
func (s *Store) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	c, err := s.Lookup(ctx, r.RegistryStr())
	if err != nil {
		return nil, err
	}
	if c == (Credentials{}) {
		return authn.Anonymous, nil
	}
	return &authn.Basic{Username: c.Username, Password: c.Password}, nil
}
