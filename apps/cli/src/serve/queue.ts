/**
 * Flow control of `ofm serve`: an admission queue (at most `concurrency` requests are processed
 * at once, at most `queue` more wait; beyond that a request is turned away at once) and a
 * detection batcher (images of concurrent requests that use the same model go through the model
 * in one `detect` call, up to `maxBatch` images, after waiting at most `windowMs` for company).
 */
import type { Detection } from '@ofm/detector';
import type { ServedModel } from './model';

/** The error a request gets when its deadline passes while it waits. */
export class DeadlineError extends Error {
  constructor(what: string) {
    super(what);
    this.name = 'DeadlineError';
  }
}

/** One request's place in the {@link AdmissionQueue}. */
export interface Ticket {
  /** Resolves when the request may be processed; rejects with a {@link DeadlineError} when `signal` aborts first. */
  ready: Promise<void>;
  /** Give the place up (waiting or processing); idempotent. */
  leave(): void;
}

/** At most `concurrency` requests at once, at most `limit` waiting. */
export class AdmissionQueue {
  private active = 0;
  private readonly waiting: { admit: () => void; cancel: () => void }[] = [];

  constructor(
    readonly concurrency: number,
    readonly limit: number,
  ) {}

  /** Requests being processed. */
  get running(): number {
    return this.active;
  }

  /** Requests waiting for a place. */
  get depth(): number {
    return this.waiting.length;
  }

  /** A place for one request, or null when `concurrency` run and `limit` wait already. */
  enter(signal: AbortSignal): Ticket | null {
    let state: 'waiting' | 'active' | 'gone';
    let ready: Promise<void>;
    let onAbort = () => {};
    const entry = { admit: () => {}, cancel: () => {} };
    if (this.active < this.concurrency) {
      this.active++;
      state = 'active';
      ready = Promise.resolve();
    } else if (this.waiting.length < this.limit) {
      state = 'waiting';
      ready = new Promise<void>((resolvePromise, reject) => {
        entry.admit = () => {
          state = 'active';
          signal.removeEventListener('abort', onAbort);
          resolvePromise();
        };
        onAbort = () => {
          if (state !== 'waiting') return;
          state = 'gone';
          this.remove(entry);
          reject(new DeadlineError('the request waited in the queue past its timeout'));
        };
        entry.cancel = () => reject(new DeadlineError('the request left the queue'));
      });
      // A caller that stops waiting (the client left) must not see an unhandled rejection.
      ready.catch(() => {});
      this.waiting.push(entry);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    } else {
      return null;
    }
    return {
      ready,
      leave: () => {
        if (state === 'waiting') {
          state = 'gone';
          signal.removeEventListener('abort', onAbort);
          this.remove(entry);
          entry.cancel();
        } else if (state === 'active') {
          state = 'gone';
          this.release();
        }
      },
    };
  }

  private remove(entry: { admit: () => void; cancel: () => void }): void {
    const i = this.waiting.indexOf(entry);
    if (i >= 0) this.waiting.splice(i, 1);
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next.admit();
    else this.active--;
  }
}

interface PendingImage {
  model: ServedModel;
  image: Float32Array;
  resolve(d: Detection): void;
  reject(err: unknown): void;
  signal: AbortSignal;
  onAbort(): void;
}

/** What a batch ran: for the metrics. */
export interface BatchStats {
  images: number;
  seconds: number;
}

/**
 * Detection batches across requests. Images wait at most `windowMs` (0: until the event loop has
 * run the callbacks already due, so images that arrive together still share a batch) and go
 * through `detect` up to `maxBatch` at a time, grouped by model: a request always detects on the
 * model it started with.
 */
export class DetectBatcher {
  private pending: PendingImage[] = [];
  private scheduled = false;

  /** Called after each batch (the server feeds its metrics). */
  onBatch: (stats: BatchStats) => void = () => {};

  constructor(
    readonly maxBatch: number,
    readonly windowMs: number,
  ) {}

  /** Images waiting for a batch. */
  get depth(): number {
    return this.pending.length;
  }

  /** Detect one image with `model`; rejects with a {@link DeadlineError} when `signal` aborts before its batch runs. */
  detect(model: ServedModel, image: Float32Array, signal: AbortSignal): Promise<Detection> {
    return new Promise<Detection>((resolvePromise, reject) => {
      const item: PendingImage = {
        model,
        image,
        resolve: resolvePromise,
        reject,
        signal,
        onAbort: () => {
          const i = this.pending.indexOf(item);
          if (i < 0) return;
          this.pending.splice(i, 1);
          reject(new DeadlineError('the image waited for detection past the request timeout'));
        },
      };
      if (signal.aborted) {
        reject(new DeadlineError('the request timed out before detection'));
        return;
      }
      signal.addEventListener('abort', item.onAbort, { once: true });
      this.pending.push(item);
      this.schedule(this.pending.length >= this.maxBatch ? 0 : this.windowMs);
    });
  }

  private schedule(delayMs: number): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // One batch at a time: `scheduled` stays set until the batch's asynchronous reads are done, so
    // two batches never interleave on one detector (per-task weights are swapped in per class).
    const run = async () => {
      await this.runBatch();
      this.scheduled = false;
      if (this.pending.length > 0) this.schedule(this.pending.length >= this.maxBatch ? 0 : this.windowMs);
    };
    if (delayMs > 0) setTimeout(() => void run(), delayMs);
    else setImmediate(() => void run());
  }

  private async runBatch(): Promise<void> {
    if (this.pending.length === 0) return;
    const model = this.pending[0]!.model;
    const batch: PendingImage[] = [];
    const rest: PendingImage[] = [];
    for (const item of this.pending) {
      if (item.model === model && batch.length < this.maxBatch) batch.push(item);
      else rest.push(item);
    }
    this.pending = rest;
    for (const item of batch) item.signal.removeEventListener('abort', item.onAbort);
    if (model.isDisposed) {
      // Only requests that already ended held it (a client that left): nobody waits for these.
      for (const item of batch) item.reject(new Error(`model generation ${model.generation} was released before the image was detected`));
      return;
    }
    const started = performance.now();
    let detections: Detection[];
    try {
      // Asynchronous reads: the same numbers as detect(), and the only kind WebGPU has in Node.js.
      detections = await model.detector.detectAsync(batch.map((b) => b.image));
    } catch (err) {
      for (const item of batch) item.reject(err);
      return;
    }
    this.onBatch({ images: batch.length, seconds: (performance.now() - started) / 1000 });
    batch.forEach((item, i) => item.resolve(detections[i]!));
  }
}
