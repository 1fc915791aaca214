# Reelgraph server image: `reelgraph serve`, `reelgraph worker`, `reelgraph migrate`.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --profile production --locked --bin reelgraph

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg ca-certificates fontconfig fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/reelgraph --create-home reelgraph
COPY --from=build /src/target/production/reelgraph /usr/local/bin/reelgraph
USER reelgraph
WORKDIR /var/lib/reelgraph
ENV REELGRAPH_LISTEN=0.0.0.0:8080 REELGRAPH_DATA_DIR=/var/lib/reelgraph
EXPOSE 8080
# `reelgraph healthz` asks the server's /healthz (the database answers). A worker container
# answers one only when started with `worker --listen 0.0.0.0:9090` and checked with
# `healthz --url http://127.0.0.1:9090/healthz` (or REELGRAPH_HEALTHZ_URL), as
# docker-compose.yml does; otherwise run it with `docker run --no-healthcheck`.
HEALTHCHECK --interval=10s --timeout=5s CMD ["reelgraph", "healthz"]
ENTRYPOINT ["reelgraph"]
CMD ["serve"]
