# Build: docker build -t accessbot .
# Run:   docker run -v /srv/accessbot:/data -v /etc/accessbot:/etc/accessbot:ro -p 8080:8080 accessbot
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /data accessbot
COPY --from=build /src/target/release/accessbot /usr/local/bin/accessbot
COPY config/accessbot.example.toml /etc/accessbot/accessbot.example.toml
USER accessbot
WORKDIR /data
# The config must set [server] listen = "0.0.0.0:8080" and [storage] path = "/data".
ENV ACCESSBOT_SERVER__LISTEN=0.0.0.0:8080 ACCESSBOT_STORAGE__PATH=/data
EXPOSE 8080
ENTRYPOINT ["accessbot", "serve", "--config", "/etc/accessbot/accessbot.toml"]
