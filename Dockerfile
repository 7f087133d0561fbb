# The `stompbox` binary with the RabbitMQ relay compiled in.
#
#   docker build -t stompbox .
#   docker run -p 15674:15674 -p 61613:61613 stompbox
#   docker compose up        # RabbitMQ + two relayed nodes behind nginx (compose.yaml)
#
# The relay is compiled in but off unless configured (STOMPBOX_RELAY__ENABLED=true); see
# docs/relay.md and docs/configuration.md.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p stompbox-server --bin stompbox --features relay

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 stompbox
COPY --from=build /src/target/release/stompbox /usr/local/bin/stompbox
USER stompbox
# WebSocket (ws://HOST:15674/ws, GET /health) and STOMP over TCP.
EXPOSE 15674 61613
ENTRYPOINT ["stompbox"]
