# syntax=docker/dockerfile:1.7
#
# Ackgate service image: one image, three binaries
# (ackgate-edge, bl-service, projections) and the operator tool
# (ackgate); compose.yaml picks the
# binary per service with `command:`.
#
# Needs BuildKit (the default builder of current Docker) for the cache mounts.
#   docker build -t ackgate:local .
#   docker run --rm ackgate:local ackgate-edge --help

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------
# Builder
# ---------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder

# rdkafka builds librdkafka from source (C toolchain, make, perl, python3,
# zlib headers); cmake is not needed. Debian stable is not pinned per package.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential perl python3 zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY . .

# The cargo registry and the target dir live in cache mounts, so rebuilds
# only recompile what changed. The cache mount is not part of the image
# layer, hence the binaries are copied out to /out within the same RUN.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/app/target,sharing=locked \
    cargo build --release --locked --bins \
        -p edge -p bl-services -p projections -p ackgate-cli \
 && mkdir -p /out \
 && cp target/release/ackgate-edge \
       target/release/bl-service \
       target/release/projections \
       target/release/ackgate \
       /out/

# ---------------------------------------------------------------------------
# Runtime
# ---------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="ackgate" \
      org.opencontainers.image.description="Ackgate CQRS command gateway: ackgate-edge, bl-service, projections and the ackgate tool" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/ackgate/ackgate" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"

# libc comes with the base; zlib for librdkafka, CA roots for TLS,
# curl for the compose healthchecks.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates zlib1g curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 ackgate \
 && useradd --system --uid 10001 --gid ackgate --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin ackgate

COPY --from=builder /out/ackgate-edge /out/bl-service /out/projections /out/ackgate /usr/local/bin/

# Inside a container the HTTP listeners must bind all interfaces
# (the binaries default to 127.0.0.1).
ENV ACKGATE_EDGE_ADDR=0.0.0.0:8080 \
    ACKGATE_BL_HTTP_ADDR=0.0.0.0:8081 \
    ACKGATE_PROJECTIONS_HTTP_ADDR=0.0.0.0:8082 \
    ACKGATE_LOG_FORMAT=json

# 8080 edge (REST + /health, /ready), 8081 bl-service health,
# 8082 projections health.
EXPOSE 8080 8081 8082

USER 10001:10001

# All three binaries shut down gracefully on SIGTERM (the default stop signal).
STOPSIGNAL SIGTERM
CMD ["ackgate-edge"]
