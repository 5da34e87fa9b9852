# syntax=docker/dockerfile:1
# taskgate image: one static binary on distroless, running as non-root.
#   docker build -t ghcr.io/astronetes/taskgate:dev .
# test/helm/dockerfile_test.go checks what can be checked without a container
# engine: the stages, the non-root final stage, the static binary, and that
# every package cmd/taskgate needs is copied in.

# The build runs on the builder's platform and cross-compiles, which is fast
# and needs no emulation for multi-arch images.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
WORKDIR /src
# Modules first: this layer is reused until go.mod/go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY actas/ actas/
COPY api/ api/
COPY children/ children/
COPY cmd/taskgate/ cmd/taskgate/
COPY controller/ controller/
COPY registry/ registry/
COPY schemas/ schemas/
COPY webhook/ webhook/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/taskgate ./cmd/taskgate

# distroless/static: no shell, no package manager, CA certificates and
# /etc/passwd with the nonroot user (65532) only.
FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/taskgate /taskgate
USER 65532:65532
ENTRYPOINT ["/taskgate"]
CMD ["manager"]
