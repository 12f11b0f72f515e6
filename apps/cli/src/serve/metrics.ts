/** The Prometheus metrics of `ofm serve` (`GET /metrics`), in a registry of their own per server. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ModelHost } from './model';
import type { AdmissionQueue, DetectBatcher } from './queue';

export interface ServeMetrics {
  registry: Registry;
  requests: Counter<'method' | 'route' | 'status'>;
  duration: Histogram<'route'>;
  images: Counter;
  batchSize: Histogram;
  batchSeconds: Histogram;
}

/** Register the server's metrics; gauges read the queue, batcher and model host when scraped. */
export function createMetrics(host: ModelHost, admission: AdmissionQueue, batcher: DetectBatcher): ServeMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'ofm_serve_' });
  const requests = new Counter({
    name: 'ofm_serve_requests_total',
    help: 'HTTP requests answered, by method, route and status code',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'ofm_serve_request_duration_seconds',
    help: 'Time from a request arriving to its response being sent, by route',
    labelNames: ['route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const images = new Counter({ name: 'ofm_serve_images_total', help: 'Images detected', registers: [registry] });
  const batchSize = new Histogram({
    name: 'ofm_serve_detect_batch_images',
    help: 'Images per detection batch (images of concurrent requests detected together)',
    buckets: [1, 2, 4, 8, 16, 32, 64],
    registers: [registry],
  });
  const batchSeconds = new Histogram({
    name: 'ofm_serve_detect_batch_seconds',
    help: 'Time of one detection batch (reconstruction, map and score)',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  new Gauge({
    name: 'ofm_serve_queue_depth',
    help: 'Requests waiting for a processing slot (503 when --queue are waiting)',
    registers: [registry],
    collect() {
      this.set(admission.depth);
    },
  });
  new Gauge({
    name: 'ofm_serve_in_flight',
    help: 'Requests being processed (at most --concurrency)',
    registers: [registry],
    collect() {
      this.set(admission.running);
    },
  });
  new Gauge({
    name: 'ofm_serve_detect_pending_images',
    help: 'Images waiting for a detection batch',
    registers: [registry],
    collect() {
      this.set(batcher.depth);
    },
  });
  new Gauge({
    name: 'ofm_serve_model_generation',
    help: 'Generation of the model serving new requests: 1 at start, one more per hot reload',
    registers: [registry],
    collect() {
      this.set(host.model.generation);
    },
  });
  new Gauge({
    name: 'ofm_serve_model_info',
    help: 'The model serving new requests (always 1): manifest checksum, tasks and classes learned',
    labelNames: ['checksum', 'tasks', 'classes'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const m = host.model;
      this.set({ checksum: m.checksum, tasks: String(m.loaded.tasks.length), classes: m.loaded.classes.map((c) => c.className).join(',') }, 1);
    },
  });
  new Counter({
    name: 'ofm_serve_model_reloads_total',
    help: 'New models swapped in since start',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(host.reloads);
    },
  });
  new Counter({
    name: 'ofm_serve_model_reload_failures_total',
    help: 'Reloads refused since start (a damaged or half-written checkpoint; the old model kept serving)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(host.reloadFailures);
    },
  });
  new Gauge({
    name: 'ofm_serve_model_last_reload_failed',
    help: '1 while the last reload attempt was refused (its error is in GET /v1/model as last_reload_error), else 0',
    registers: [registry],
    collect() {
      this.set(host.lastReloadFailed ? 1 : 0);
    },
  });
  return { registry, requests, duration, images, batchSize, batchSeconds };
}
