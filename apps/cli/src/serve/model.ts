/**
 * The model `ofm serve` detects with, and its hot reload: a checkpoint (or browser export) folder
 * is polled for a new manifest; a new model is loaded in the background with every file checked
 * against its SHA-256, then swapped in atomically. Requests hold a reference to the model they
 * started on ({@link ModelHost.acquire}); an old model's tensors are released only after its last
 * request ends. A damaged or half-written checkpoint is refused: the old model keeps serving and
 * the error is kept for `/v1/model` and `/metrics`.
 */
import { createHash } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { ContinualDetector, DetectorConfig, LearnedClass, TaskRecord } from '@ofm/detector';

/** Which kind of folder is served: a training checkpoint (`--ckpt`) or a browser export (`--model`). */
export type ModelKind = 'checkpoint' | 'export';

/** What a loader returns: the detector and what `/v1/model` shows about it. */
export interface LoadedModel {
  detector: ContinualDetector;
  /** The manifest meta's `format` and `version`. */
  format: string;
  formatVersion: number;
  config: DetectorConfig;
  classes: LearnedClass[];
  tasks: TaskRecord[];
}

/** Loads the folder's model, checking every file's SHA-256; throws with a message naming the file at fault. */
export type ModelLoader = (dir: string) => Promise<LoadedModel>;

/** One loaded model and the requests using it. */
export class ServedModel {
  /** Requests that started on this model and have not ended. */
  private refs = 0;
  private retired = false;
  private disposed = false;

  constructor(
    readonly loaded: LoadedModel,
    /** 1 for the model loaded at start, then one more for each model swapped in. */
    readonly generation: number,
    /** SHA-256 (hex) of the manifest the model was loaded from; the manifest lists every file's SHA-256. */
    readonly checksum: string,
    readonly loadedAt: Date,
    readonly loadMs: number,
  ) {}

  get detector(): ContinualDetector {
    if (this.disposed) throw new Error(`model generation ${this.generation} was used after it was released`);
    return this.loaded.detector;
  }

  /** Requests holding this model now. */
  get inUse(): number {
    return this.refs;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** @internal */
  ref(): void {
    this.refs++;
  }

  /** @internal Drop one reference; a retired model is released with its last one. */
  unref(): void {
    if (this.refs <= 0) throw new Error(`model generation ${this.generation}: released more often than acquired`);
    this.refs--;
    if (this.retired && this.refs === 0) this.dispose();
  }

  /** @internal No new request gets this model; it is released once its requests end (at once when none hold it). */
  retire(): void {
    this.retired = true;
    if (this.refs === 0) this.dispose();
  }

  private dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.loaded.detector.dispose();
  }
}

/** A model reference held by one request; release it exactly once when the request ends. */
export interface ModelLease {
  model: ServedModel;
  release(): void;
}

/** The outcome of one reload attempt. */
export interface ReloadOutcome {
  /** `swapped`: a new model serves; `unchanged`: the manifest is the one served; `refused`: the new checkpoint failed to load. */
  status: 'swapped' | 'unchanged' | 'refused';
  generation: number;
  checksum: string;
  error: string | null;
}

/** Events the host reports (the CLI prints them; tests may record them). */
export interface ModelHostEvents {
  onSwap?(next: ServedModel, previous: ServedModel): void;
  onRefused?(error: string, checksum: string | null): void;
}

/** The SHA-256 of the manifest in `dir`, or null when there is none (a save swapping folders, or no checkpoint). */
async function manifestChecksum(dir: string): Promise<string | null> {
  try {
    return createHash('sha256')
      .update(await readFile(join(dir, 'manifest.json')))
      .digest('hex');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw err;
  }
}

/**
 * A cheap fingerprint of the folder's top level (name, size, mtime and inode of every file): it
 * changes when a save swaps the folder, and when files are copied into it in place (a manual
 * copy to shared storage), so a refused half-written copy is tried again once the copy goes on.
 */
async function folderFingerprint(dir: string): Promise<string> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (err) {
    return `unreadable:${(err as NodeJS.ErrnoException).code ?? ''}`;
  }
  const parts: string[] = [];
  for (const name of names) {
    try {
      const s = await stat(join(dir, name));
      if (s.isFile()) parts.push(`${name}:${s.size}:${s.mtimeMs}:${s.ino}`);
    } catch {
      parts.push(`${name}:gone`);
    }
  }
  return parts.join('|');
}

/** Serves one model folder, swapping in new versions of it. */
export class ModelHost {
  readonly dir: string;
  private current: ServedModel | null = null;
  private fingerprint = '';
  private timer: NodeJS.Timeout | null = null;
  private reloading: Promise<ReloadOutcome> | null = null;
  private closed = false;
  /** Successful swaps since start. */
  reloads = 0;
  /** Refused reloads since start. */
  reloadFailures = 0;
  lastReloadError: string | null = null;
  lastReloadErrorAt: Date | null = null;
  lastReloadAttemptAt: Date | null = null;
  /** True from a refused reload until the next successful one. */
  lastReloadFailed = false;

  constructor(
    dir: string,
    readonly kind: ModelKind,
    private readonly loader: ModelLoader,
    private readonly events: ModelHostEvents = {},
  ) {
    this.dir = resolve(dir);
  }

  /** Load the first model (errors propagate: the server does not start without one). */
  async start(): Promise<ServedModel> {
    if (this.current) return this.current;
    this.fingerprint = await folderFingerprint(this.dir);
    const model = await this.loadConsistent(1);
    if (model instanceof Error) throw model;
    this.current = model;
    return model;
  }

  /** The model new requests get. */
  get model(): ServedModel {
    if (!this.current) throw new Error('the model host has not started');
    return this.current;
  }

  /** Take a reference to the current model for one request; call `release` when the request ends. */
  acquire(): ModelLease {
    const model = this.model;
    model.ref();
    let released = false;
    return {
      model,
      release: () => {
        if (released) return;
        released = true;
        model.unref();
      },
    };
  }

  /** Poll the folder every `intervalMs` for a new manifest (0: never). */
  watch(intervalMs: number): void {
    if (intervalMs <= 0 || this.timer || this.closed) return;
    const tick = async () => {
      this.timer = null;
      try {
        await this.poll();
      } catch (err) {
        // Reloads record their own failures; anything else (the folder unreadable) is recorded here.
        this.recordFailure(err instanceof Error ? err.message : String(err), null);
      } finally {
        if (!this.closed) this.timer = setTimeout(tick, intervalMs);
      }
    };
    this.timer = setTimeout(tick, intervalMs);
  }

  /** One poll: reload when the folder changed and holds a manifest other than the served one. */
  async poll(): Promise<ReloadOutcome | null> {
    const fp = await folderFingerprint(this.dir);
    if (fp === this.fingerprint) return null;
    this.fingerprint = fp;
    return this.reload();
  }

  /**
   * Load the folder's model now unless it is the one served, and swap it in. A load that fails
   * is recorded and the served model stays; concurrent calls share one attempt.
   */
  reload(): Promise<ReloadOutcome> {
    if (!this.reloading) {
      this.reloading = this.reloadOnce().finally(() => {
        this.reloading = null;
      });
    }
    return this.reloading;
  }

  private outcome(status: ReloadOutcome['status'], error: string | null = null): ReloadOutcome {
    return { status, generation: this.model.generation, checksum: this.model.checksum, error };
  }

  private async reloadOnce(): Promise<ReloadOutcome> {
    if (this.closed) return this.outcome('unchanged');
    this.lastReloadAttemptAt = new Date();
    const checksum = await manifestChecksum(this.dir).catch(() => null);
    if (checksum === this.model.checksum) {
      // The folder holds the served model again: an earlier refusal is no longer current.
      this.lastReloadFailed = false;
      return this.outcome('unchanged');
    }
    if (checksum === null) {
      // Between the two renames of an atomic save there is briefly no folder: the next poll sees the new one.
      this.fingerprint = '';
      return this.outcome('unchanged');
    }
    let next: ServedModel | Error;
    try {
      next = await this.loadConsistent(this.model.generation + 1);
    } catch (err) {
      // The folder could not even be read (permissions, a vanished mount): a refusal like any other.
      next = err instanceof Error ? err : new Error(String(err));
    }
    if (next instanceof Error) {
      this.recordFailure(next.message, await manifestChecksum(this.dir).catch(() => null));
      return this.outcome('refused', next.message);
    }
    if (this.closed) {
      next.retire();
      return this.outcome('unchanged');
    }
    const previous = this.model;
    this.current = next;
    this.reloads++;
    this.lastReloadFailed = false;
    previous.retire();
    this.events.onSwap?.(next, previous);
    return this.outcome('swapped');
  }

  private recordFailure(error: string, checksum: string | null): void {
    this.reloadFailures++;
    this.lastReloadFailed = true;
    this.lastReloadError = error;
    this.lastReloadErrorAt = new Date();
    this.events.onRefused?.(error, checksum);
  }

  /**
   * Load the folder's model, reading the manifest's checksum before and after: when a save
   * replaced the folder during the load (the files read may mix two saves, and fail their
   * SHA-256), the load is tried again on the new folder, up to 3 times. Returns the error when
   * the folder's model cannot be loaded.
   */
  private async loadConsistent(generation: number): Promise<ServedModel | Error> {
    let lastError: Error = new Error(`${this.dir}: the checkpoint could not be loaded`);
    for (let attempt = 0; attempt < 3; attempt++) {
      const before = await manifestChecksum(this.dir);
      const started = performance.now();
      let loaded: LoadedModel | null = null;
      let error: Error | null = null;
      try {
        loaded = await this.loader(this.dir);
      } catch (err) {
        error = err instanceof Error ? err : new Error(String(err));
      }
      const after = await manifestChecksum(this.dir).catch(() => null);
      if (loaded && before !== null && before === after) {
        return new ServedModel(loaded, generation, before, new Date(), performance.now() - started);
      }
      loaded?.detector.dispose();
      lastError = error ?? new Error(`${this.dir}: the checkpoint changed while it was loaded`);
      // Unchanged during the load (or no manifest at all): the folder's model itself is at fault.
      if (before === after) return lastError;
      // The folder changed under the load: a save went on meanwhile. Read it again.
      await new Promise((r) => setTimeout(r, 50));
    }
    return lastError;
  }

  /** Stop polling, wait for a reload in progress, and release the model once its requests end. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.reloading?.catch(() => {});
    this.current?.retire();
  }
}
