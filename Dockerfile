# syntax=docker/dockerfile:1
# The runnel image: the host built with the `dist` profile (release, stripped)
# and the example plugins, on Debian slim, run as an unprivileged user.
#
#   docker build -t runnel:0.1.0 .
#   docker run --rm -e RUNNEL_BROKERS=BROKER:9092 \
#       -v "$PWD/deploy/runnel.toml:/etc/runnel/runnel.toml:ro" runnel:0.1.0
#
# The build follows scripts/setup.sh and scripts/demo.sh: the compiler that
# rust-toolchain.toml pins, with its wasm32-wasip2 target; the host from the
# root workspace, the plugins from their own workspace (plugins/).

# ---- build ----
FROM rust:1.99.1-bookworm AS build
WORKDIR /src
# rust-toolchain.toml first, so the toolchain layer is rebuilt only when the
# pin changes. `rustup toolchain install` reads the file (as setup.sh does).
COPY rust-toolchain.toml ./
RUN rustup toolchain install && rustup target add wasm32-wasip2
COPY . .
# Cargo's registry and the target directories are build caches, kept between
# builds and never in the image; the results are copied out to /out.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --profile dist -p runnel \
    && install -D -m 0755 target/dist/runnel /out/bin/runnel
# plugins/.cargo/config.toml sets the wasm32-wasip2 target and SIMD.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/plugins/target \
    cd plugins \
    && cargo build --locked --release -p uppercase -p json-router -p counter \
    && install -D -m 0644 -t /out/plugins \
        target/wasm32-wasip2/release/uppercase.wasm \
        target/wasm32-wasip2/release/json_router.wasm \
        target/wasm32-wasip2/release/counter.wasm

# ---- runtime ----
# The same Debian release as the build image, so the binary finds the C
# library it was linked against (it also needs libz, libgcc_s and libm, all
# in the slim image, and OpenSSL's libssl3, for Kafka over TLS and SCRAM).
# curl is there for health checks.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 runnel \
    && useradd --system --uid 10001 --gid runnel --no-create-home \
        --home-dir /var/lib/runnel --shell /usr/sbin/nologin runnel \
    && mkdir -p /etc/runnel /var/lib/runnel/plugins
COPY --from=build /out/bin/runnel /usr/local/bin/runnel
COPY --from=build /out/plugins/ /usr/share/runnel/plugins/

# The configuration is mounted here; `runnel run` reads RUNNEL_CONFIG.
ENV RUNNEL_CONFIG=/etc/runnel/runnel.toml
# The numeric user, so that Kubernetes can check runAsNonRoot.
USER 10001:10001
WORKDIR /var/lib/runnel
# http.listen: metrics, health, stats, Dapr bindings and the admin
# endpoints. Its default, 127.0.0.1:3000, is reached only from inside the
# container: the configuration must set listen = "0.0.0.0:3000"
# (deploy/runnel.toml does), and an admin token for the admin endpoints to
# answer from outside (http.admin_token_file or RUNNEL_ADMIN_TOKEN).
EXPOSE 3000
# Liveness only: /healthz answers 200 while the process runs. Readiness
# (/readyz) belongs to the orchestrator's own checks.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:3000/healthz"]
# SIGTERM drains (Docker's default stop signal): give the container
# drain_timeout plus 15 s to stop (docker stop -t, stop_grace_period,
# terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["runnel"]
CMD ["run"]
