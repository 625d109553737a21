# syntax=docker/dockerfile:1
# flagger-rs image: the operator (flagger) and the load tester (flagger-loadtester), static musl binaries on
# a distroless base (CA certificates included, runs as non-root). Not built in this repository's CI; see
# docs/install.md.

FROM rust:1.95-alpine AS build
RUN apk add --no-cache musl-dev perl make cmake clang
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p flagger -p flagger-loadtester \
 && mkdir -p /out \
 && cp target/release/flagger target/release/flagger-loadtester /out/

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/flagger /usr/local/bin/flagger
COPY --from=build /out/flagger-loadtester /usr/local/bin/flagger-loadtester
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/flagger"]
