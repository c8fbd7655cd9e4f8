#!/usr/bin/env bash
# Installs what the local test stack needs and prints the directory holding the
# built tools. Idempotent and safe to run from several processes at once.
#   apt: runc (OCI runtime), docker-registry (CNCF distribution), busybox-static (base image),
#        docker.io (a Docker engine for the load input's test), openssh-client (ssh-agent for
#        the ssh input's test)
#   go:  buildkitd and buildctl at the version go.mod pins, built once into a cache
#        outside the repository; nektos/act likewise when asked for with --act.
# With --lint it builds only the linters (golangci-lint, actionlint) at the versions the
# Makefile pins, into the same cache, and prints their directory: no apt, no root needed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
want_act=false
want_lint=false
case "${1:-}" in
--act) want_act=true ;;
--lint) want_lint=true ;;
esac

cache=${ECR_BUILD_CACHE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/ecr-build-cache}
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

# build_tool DIR MODULE VERSION PACKAGE... builds the packages in a throw-away module.
build_tool() {
  local dir=$1 mod=$2 ver=$3; shift 3
  [ -f "$dir/.done" ] && return
  echo "install-stack: building $mod@$ver into $dir (takes minutes once)" >&2
  local work; work=$(mktemp -d)
  (
    cd "$work"
    go mod init tools >/dev/null 2>&1
    for p in "$@"; do go get "$p@$ver" >&2; done
    mkdir -p "$dir"
    CGO_ENABLED=0 go build -trimpath -o "$dir/" "$@" >&2
  )
  rm -rf "$work"
  touch "$dir/.done"
}

# makefile_var NAME prints a version the Makefile pins.
makefile_var() { sed -n "s/^$1 *:= *//p" "$root/Makefile"; }

if $want_lint; then
  gl_ver=$(makefile_var GOLANGCI_LINT_VERSION)
  al_ver=$(makefile_var ACTIONLINT_VERSION)
  # golangci-lint refuses a module whose go line is newer than the Go it was built
  # with: a new toolchain gets a new build.
  gl_dir="$cache/golangci-lint-$gl_ver-$(go env GOVERSION)"
  build_tool "$gl_dir" github.com/golangci/golangci-lint/v2 "$gl_ver" \
    github.com/golangci/golangci-lint/v2/cmd/golangci-lint
  build_tool "$cache/actionlint-$al_ver" github.com/rhysd/actionlint "$al_ver" \
    github.com/rhysd/actionlint/cmd/actionlint
  echo "$gl_dir:$cache/actionlint-$al_ver"
  exit 0
fi

missing=()
for pkg in runc docker-registry busybox-static docker.io openssh-client; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-stack: apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}" >&2
  # The Debian package starts a registry on :5000 as a service; the stack runs its own.
  if [[ " ${missing[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
  # Likewise the Docker engine: the test starts its own, off the host's network.
  if [[ " ${missing[*]} " == *" docker.io "* ]] && command -v systemctl >/dev/null; then
    systemctl disable --now docker.service docker.socket containerd.service >/dev/null 2>&1 || true
  fi
fi

bk_ver=$(cd "$root" && go list -m -f '{{.Version}}' github.com/moby/buildkit)
build_tool "$cache/buildkit-$bk_ver" github.com/moby/buildkit "$bk_ver" \
  github.com/moby/buildkit/cmd/buildkitd github.com/moby/buildkit/cmd/buildctl
dirs="$cache/buildkit-$bk_ver"

if $want_act; then
  act_ver=$(makefile_var ACT_VERSION)
  build_tool "$cache/act-$act_ver" github.com/nektos/act "$act_ver" github.com/nektos/act
  dirs="$dirs:$cache/act-$act_ver"
fi
echo "$dirs"
