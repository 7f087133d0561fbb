# The `stompbox` binary with the RabbitMQ relay compiled in.
#
#   docker build -t stompbox .
#   docker run -p 15674:15674 -p 61613:61613 -v stompbox-data:/var/lib/stompbox stompbox
#   docker compose up        # RabbitMQ + two relayed nodes behind nginx (compose.yaml)
#
# The relay is compiled in but off unless configured (STOMPBOX_RELAY__ENABLED=true); see
# docs/relay.md and docs/configuration.md.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p stompbox-server --bin stompbox --features relay

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 stompbox \
    && mkdir -p /var/lib/stompbox && chown stompbox /var/lib/stompbox
COPY --from=build /src/target/release/stompbox /usr/local/bin/stompbox
USER stompbox
# Persistent queue messages (docs/persistence.md): mount a volume here to keep them across
# containers.
ENV STOMPBOX_STORE__DATA_DIR=/var/lib/stompbox
VOLUME /var/lib/stompbox
# WebSocket (ws://HOST:15674/ws, GET /health) and STOMP over TCP.
EXPOSE 15674 61613
ENTRYPOINT ["stompbox"]
