# `ofm serve` in a container: detection over HTTP with hot reload of a checkpoint on a mounted
# volume (shared storage). Build from the repository root:
#
#   docker build -t ofm-serve .
#   docker run --rm -p 8080:8080 -v "$PWD/model:/models/current:ro" ofm-serve
#
# The server is stateless: run as many replicas as needed behind any load balancer, each reading
# the model from the same path. Probes, shutdown and the Kubernetes manifest: docs/serving.md.

FROM node:20-slim AS build
RUN npm install -g pnpm@10.34.9
WORKDIR /app
COPY . .
RUN pnpm install --frozen-lockfile \
 && pnpm exec turbo run build --filter=@ofm/cli...

FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app /app
USER node
EXPOSE 8080
# The model folder: a checkpoint of `ofm train` (or pass --model with an `ofm export`).
VOLUME ["/models"]
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s \
  CMD node -e "fetch('http://127.0.0.1:8080/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
# SIGTERM (docker stop, a Kubernetes rollout) stops taking requests, finishes those in flight and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/apps/cli/dist/bin.js", "serve"]
CMD ["--ckpt", "/models/current", "--host", "0.0.0.0", "--port", "8080"]
