# Every option that changes how BuildKit keys a cache mount.
FROM debian:bookworm AS base
ENV APT_CACHE=/var/cache/apt
RUN --mount=type=cache,target=${APT_CACHE},sharing=locked \
    --mount=type=cache,target=/var/lib/apt,sharing=locked \
    apt-get update && apt-get install -y gcc
FROM base AS node
ARG NPM_ID=npm
RUN --mount=type=cache,id=$NPM_ID,target=/root/.npm,uid=1000,gid=1000,mode=0755 npm ci
RUN --mount=type=cache,target=relative/cache,sharing=private make
RUN --mount=type=cache,id=with-source,target=/data,source=sub,uid=1000 make
RUN --mount=type=cache,target=/deps,from=base,source=/var/lib/apt ls /deps
RUN --mount=type=cache,target=$HOME_FROM_IMAGE/.cargo cargo build
RUN --mount=type=secret,id=npmrc,target=/root/.npmrc --mount=type=tmpfs,target=/tmp echo no cache here
