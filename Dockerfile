# accessbot container image.
#
# Build: docker build -t accessbot .
# Run:   docker run -d --name accessbot \
#          -v accessbot-data:/data \
#          -v /etc/accessbot/accessbot.toml:/etc/accessbot/accessbot.toml:ro \
#          --env-file accessbot.env -p 127.0.0.1:8080:8080 accessbot
# Or:    docker compose -f deploy/compose.yaml up (see the comments there).
#
# Lint:  hadolint Dockerfile (clean; command and result in docs/operations.md).

# ---- build ---------------------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src

# Dependency layer: the manifests and stub sources only, so this layer (every crate in
# Cargo.lock, compiled) is rebuilt only when Cargo.toml or Cargo.lock change, not on every edit
# of src/. Cargo.toml names [[bench]] targets without a path, and cargo refuses to read the
# manifest when their files are missing, so those get stubs too (the [[test]] as well, for the
# same reason should it ever lose its explicit path). fuzz/ is its own crate (own [workspace])
# and is never part of this build; .dockerignore keeps it, tests/, benches/ and target/ out.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches tests/it \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs benches/event_path.rs benches/grant.rs \
    && echo 'fn main() {}' > tests/it/main.rs \
    && cargo build --release --locked --no-default-features --bin accessbot \
    && rm -f target/release/accessbot

# Both builds use --no-default-features: the image is the server alone, without the simulators,
# `demo` and `fault` (the `sandbox` feature).
#
# The real source. COPY keeps the files' own modification times, which are older than the
# stub build above, so cargo would take the stub's fingerprint as current and ship the empty
# binary: touch the crate roots so the accessbot crate itself is rebuilt (dependencies are not).
# The stub prints nothing, so the --version check fails the build if that ever happens.
# config/ is compiled in (`accessbot config example` prints it).
COPY src ./src
COPY config ./config
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --no-default-features --bin accessbot \
    && test -n "$(./target/release/accessbot --version)"

# ---- runtime -------------------------------------------------------------------------------
FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="accessbot" \
      org.opencontainers.image.description="DingTalk bot that grants time-bound JumpServer access through approvals" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="debian:bookworm-slim"

# tzdata: times are shown in [chat] timezone (default Asia/Shanghai), read from
# /usr/share/zoneinfo. No ca-certificates: the TLS roots are compiled into the binary
# (rustls with webpki-roots), the system store is not consulted.
# Not pinned (DL3008): tzdata must follow Debian's stable updates (time-zone rule changes), and
# a pinned version disappears from the archive at the next point release, breaking the build.
# The account: numeric, fixed UID/GID 10001 (volume ownership on the host can be set to match),
# no login shell, home /data; -l keeps the lastlog/faillog files small with a high UID.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 accessbot \
    && useradd --system -l --uid 10001 --gid 10001 --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin accessbot \
    && mkdir -p /data /etc/accessbot \
    && chown 10001:10001 /data \
    && chmod 0700 /data

COPY --from=build /src/target/release/accessbot /usr/local/bin/accessbot
COPY config/accessbot.example.toml /etc/accessbot/accessbot.example.toml

# The bot's state (sled: orders, outbox, audit trail, dedupe keys, the installation id that
# names its JumpServer objects). Losing it makes the bot a new installation: keep it on a volume.
VOLUME /data
WORKDIR /data

# Mount the configuration at /etc/accessbot/accessbot.toml (read-only). These two settings are
# what the image needs whatever the file says; secrets come as ACCESSBOT_* variables or
# *_file keys pointing at mounted secret files (docs/operations.md).
ENV ACCESSBOT_SERVER__LISTEN=0.0.0.0:8080 \
    ACCESSBOT_STORAGE__PATH=/data

USER 10001:10001

# HTTP mode: DingTalk's callbacks (through your TLS proxy) and /healthz, /readyz.
# Stream mode needs no inbound port; the healthcheck still uses it on loopback.
EXPOSE 8080

# `accessbot healthcheck` reads the same config and environment, then GETs
# http://<server.listen>/readyz (a wildcard address is asked on loopback) and exits 0 on 200.
# /readyz (store, DingTalk token, Stream connection, JumpServer authenticated) is being added;
# until it is, a 404 there falls back to /healthz (the process answers). The start period
# covers opening the store and, once /readyz exists, the first JumpServer and DingTalk calls.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["accessbot", "healthcheck", "--config", "/etc/accessbot/accessbot.toml", "--timeout-ms", "4000"]

# SIGTERM: the bot stops accepting, finishes in-flight requests and flushes the store.
STOPSIGNAL SIGTERM
ENTRYPOINT ["accessbot"]
CMD ["serve", "--config", "/etc/accessbot/accessbot.toml"]
