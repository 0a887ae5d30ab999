# syntax=docker/dockerfile:1
# Verity's container image: a Go build stage, then a small Debian runtime
# with only what the binary needs (glibc and libstdc++: DuckDB is C++,
# linked through cgo), run as a non-root user.
#
#   docker build -t verity .
#   docker run --rm -v "$PWD:/data" -w /data verity run --out runs fixtures/specs/checkout-button.yaml
#
# No container engine runs on this project's machines, so CI checks this file
# without one (`make deploy-check`, deploy/check): it runs the line after the
# "build-line" marker below, builds a bookworm root filesystem with
# debootstrap holding the packages after the "runtime-packages" marker, and
# runs the fixtures inside it as the USER below. Keep each marked
# instruction on one line.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# build-line: deploy/check runs this command from the repository root, with /out/verity replaced by its own path.
RUN CGO_ENABLED=1 go build -trimpath -buildvcs=false -ldflags=-s -o /out/verity ./cmd/verity

# The runtime matches the build stage's Debian release (bookworm), so the
# binary finds the glibc and libstdc++ it was linked against.
FROM debian:bookworm-slim
# runtime-packages: deploy/check installs exactly these into its root filesystem.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libstdc++6 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 verity && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/verity --create-home --shell /usr/sbin/nologin verity
COPY --from=build /out/verity /usr/local/bin/verity
USER 10001:10001
WORKDIR /var/lib/verity
ENTRYPOINT ["/usr/local/bin/verity"]
