# One image for both servers: a build stage with the -dev packages, a slim runtime stage with
# only the shared libraries and a non-root user.
FROM debian:12-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      gcc make libc6-dev libmicrohttpd-dev libcurl4-openssl-dev libcjson-dev libpq-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY common common
COPY primary primary
COPY replica replica
COPY sql sql
COPY console console
COPY tools tools
COPY deploy deploy
RUN make -j2 all && make install PREFIX=/opt/tdgl

FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      libmicrohttpd12 libcurl4 libcjson1 libpq5 libssl3 ca-certificates curl postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/tdgl --create-home tdgl \
    && mkdir -p /shared /var/lib/tdgl/files && chown tdgl:tdgl /shared /var/lib/tdgl/files
COPY --from=build /opt/tdgl/bin/tdgl-primary /opt/tdgl/bin/tdgl-replica /usr/local/bin/
COPY deploy/entrypoint.sh /usr/local/bin/tdgl-entrypoint
COPY deploy/sample.sql /usr/local/share/tdgl/sample.sql
USER tdgl
WORKDIR /var/lib/tdgl
ENTRYPOINT ["/usr/local/bin/tdgl-entrypoint"]
