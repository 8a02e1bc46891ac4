# syntax=docker/dockerfile:1
# The roiergasias operator (controller) image.
# Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t roiergasias-operator:0.2.0 .

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
    cargo build --release --locked --bin roiergasias-operator \
    && install -D -m 0755 target/release/roiergasias-operator /out/roiergasias-operator

# Distroless cc: glibc and CA certificates, no shell, runs as nonroot (65532);
# the operator writes no files, so a read-only root filesystem suits it.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/roiergasias-operator /usr/local/bin/roiergasias-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/roiergasias-operator"]
