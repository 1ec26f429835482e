# syntax=docker/dockerfile:1
# auditrelay: a static binary on distroless, non-root.
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#                --build-arg REVISION=$(git rev-parse HEAD) -t auditrelay .
#   docker run -v /etc/thehive/application.conf:/etc/auditrelay/application.conf:ro -p 9464:9464 auditrelay

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" \
      -o /out/auditrelay ./cmd/auditrelay

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/auditrelay /usr/local/bin/auditrelay
# The config (mount TheHive's application.conf here, read-only); relative
# store paths in it resolve against this directory.
ENV AUDITRELAY_CONFIG=/etc/auditrelay/application.conf
# admin.listen must be "0.0.0.0:9464" in the config for a scrape from outside
# the container; the healthcheck runs inside it.
EXPOSE 9464
USER nonroot:nonroot
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/auditrelay", "healthcheck", "-url", "http://127.0.0.1:9464/healthz"]
ENTRYPOINT ["/usr/local/bin/auditrelay"]
CMD ["run", "-config", "/etc/auditrelay/application.conf"]
