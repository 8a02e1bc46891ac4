# syntax=docker/dockerfile:1
# The roiergasias runner: the image a Workflow's Jobs run.
# Build from the repository root:
#   docker build -f docker/runner.Dockerfile -t roiergasias:0.2.0 .
# With a binary built beforehand (no Rust stage), put it at DIR/out/roiergasias and name DIR as
# the `builder` stage; a named build context replaces the stage of the same name (BuildKit, buildah):
#   docker build --build-context builder=DIR -f docker/runner.Dockerfile -t roiergasias:0.2.0 .
# `cargo xtask images` builds this very file that way, with buildah, offline.

FROM docker.io/library/rust:1.95-slim-bookworm AS builder
WORKDIR /src
# The whole workspace: cargo reads every member's manifest.
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY engine engine
COPY crd crd
COPY controller controller
COPY xtask xtask
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin roiergasias \
    && install -D -m 0755 target/release/roiergasias /out/roiergasias

# Debian slim rather than distroless: workflows `execute` ordinary programs
# (sh, coreutils, python in derived images), so the runner needs a userland.
FROM docker.io/library/debian:bookworm-slim
RUN groupadd --gid 65532 roiergasias \
    && useradd --uid 65532 --gid 65532 --home-dir /home/roiergasias --create-home --shell /usr/sbin/nologin roiergasias \
    && chmod 0755 /root
COPY --from=builder /out/roiergasias /usr/local/bin/roiergasias
# Manifests written for the original run /root/roiergasias: keep that path,
# with /root readable, so they work unchanged under the non-root user.
COPY --from=builder /out/roiergasias /root/roiergasias
ENV HOME=/home/roiergasias
USER 65532:65532
WORKDIR /home/roiergasias
ENTRYPOINT ["roiergasias"]
CMD ["--help"]
