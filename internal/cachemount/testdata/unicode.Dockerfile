# Mount ids and targets outside ASCII: BuildKit reads a RUN's flags byte by
# byte, so its cache ids are the bytes read as Latin-1.
FROM busybox
RUN --mount=type=cache,id=grüße,target=/cache/a \
    --mount=type=cache,target=/cache/données \
    true
