# syntax=docker/dockerfile:1
# One build for the three binaries; pick an image with --target:
#   docker build --target auth-service -t auth-service .
#   docker build --target gateway -t gateway .
#   docker build --target demo-upstream -t demo-upstream .
# Build caching: the dependency layer is rebuilt only when Cargo.toml or Cargo.lock change, and
# BuildKit cache mounts keep the crates.io registry across builds.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
ENV CARGO_TERM_COLOR=never CARGO_INCREMENTAL=0

# 1. Dependencies only: the manifests, with empty sources standing in for the crates.
COPY Cargo.toml Cargo.lock ./
COPY shared/Cargo.toml shared/
COPY auth-service/Cargo.toml auth-service/
COPY gateway/Cargo.toml gateway/
COPY demo-upstream/Cargo.toml demo-upstream/
COPY testkit/Cargo.toml testkit/
RUN mkdir -p shared/src auth-service/src gateway/src demo-upstream/src testkit/src \
    && touch shared/src/lib.rs auth-service/src/lib.rs gateway/src/lib.rs testkit/src/lib.rs \
    && for bin in auth-service gateway demo-upstream; do echo "fn main() {}" > "$bin/src/main.rs"; done
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    cargo build --release --locked -p auth-service -p gateway -p demo-upstream

# 2. The workspace itself.
COPY shared shared
COPY auth-service auth-service
COPY gateway gateway
COPY demo-upstream demo-upstream
COPY testkit testkit
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    touch shared/src/lib.rs auth-service/src/lib.rs auth-service/src/main.rs \
      gateway/src/lib.rs gateway/src/main.rs demo-upstream/src/main.rs \
    && cargo build --release --locked -p auth-service -p gateway -p demo-upstream \
    && mkdir -p /out \
    && cp target/release/auth-service target/release/gateway target/release/demo-upstream /out/

# Runtime: glibc and CA certificates, no shell, no package manager; runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
USER 65532:65532
WORKDIR /home/nonroot

FROM runtime AS auth-service
COPY --from=build /out/auth-service /usr/local/bin/auth-service
ENV AUTH_LISTEN=0.0.0.0:8081 AUTH_DATA_DIR=/home/nonroot/data
EXPOSE 8081
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/auth-service", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/auth-service"]

FROM runtime AS gateway
COPY --from=build /out/gateway /usr/local/bin/gateway
ENV GATEWAY_LISTEN=0.0.0.0:8080 GATEWAY_ADMIN_LISTEN=0.0.0.0:9090
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/gateway", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/gateway"]

FROM runtime AS demo-upstream
COPY --from=build /out/demo-upstream /usr/local/bin/demo-upstream
ENV DEMO_LISTEN=0.0.0.0:8082
EXPOSE 8082
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/demo-upstream", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/demo-upstream"]
