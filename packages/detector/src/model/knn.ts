/**
 * A reference method, not a continual learner: PatchCore-style patch memory banks (Roth et al.,
 * "Towards Total Recall in Industrial Anomaly Detection", CVPR 2022) on weight-free filter-bank
 * features. Every class learned keeps a bank of its normal training patches, so nothing is ever
 * forgotten, at the price of storing features of every class seen. `ofm bench continual --methods
 * knn` puts it next to the continual methods on the same test images and metrics. Browser-safe (no
 * Node APIs).
 */
import { hashSeed } from '@ofm/datasets';
import { ConfigError, DataError, Rng, tf } from '@ofm/tensor';
import type { Detection, TaskImages } from './detector';
import { type FeatureExtractor, FilterBankExtractor, gaussianBlur } from './features';
import { abortError } from './abort';

/** Options of {@link PatchKnnDetector}; every field has a default. */
export interface PatchKnnOptions {
  /** Side of the square input images in pixels (default 32). */
  imageSize?: number;
  /** Per-pixel features (default: `FilterBankExtractor` with its default sigmas, 15 channels). */
  extractor?: FeatureExtractor;
  /**
   * Pixels per cell of the patch grid: the features are averaged over `stride` x `stride` blocks
   * (the grid is `imageSize / stride` on a side; `stride` must divide `imageSize`). Default: the
   * largest power of two that divides `imageSize` and is at most `imageSize / 32` (a grid of 32 to
   * 63 cells, like PatchCore's 28 x 28 at 224 px).
   */
  stride?: number;
  /** Neighbourhood aggregation: each patch is the mean of k x k grid cells around it (odd; default 3, PatchCore's). */
  patch?: number;
  /** Bank entries kept per class (default 4096); a class with fewer training patches keeps them all. */
  bankSize?: number;
  /**
   * How the bank is chosen from a class's training patches: `'kcenter'` (default; greedy k-center,
   * PatchCore's coreset) or `'random'` (a seeded uniform subsample).
   */
  coreset?: 'kcenter' | 'random';
  /**
   * Greedy k-center measures distances on a seeded Gaussian random projection to this many
   * dimensions when the features have more (default 128, PatchCore's); the bank keeps the full features.
   */
  projectionDim?: number;
  /** Neighbours per patch: a patch's score is its mean distance to its `k` nearest bank entries (default 1). */
  k?: number;
  /** Gaussian blur of the upsampled map in pixels (default `4 * imageSize / 224`, PatchCore's sigma 4 at 224 px). */
  blurSigma?: number;
  /** Images per feature batch (default 8). */
  batchSize?: number;
  /** Seed of the coreset and projection (each class draws its own stream from it and its name; default 0). */
  seed?: number;
}

/** The resolved options of a {@link PatchKnnDetector} (everything but the extractor). */
export type PatchKnnConfig = Required<Omit<PatchKnnOptions, 'extractor'>>;

/** A class the detector holds a bank of. */
export interface PatchKnnClass {
  className: string;
  /** 0-based index of the task that brought it. */
  task: number;
  /** Normal training images its bank was built from. */
  trainImages: number;
  /** Training patches the bank was chosen from. */
  candidates: number;
  /** Bank entries kept. */
  bankSize: number;
  /** Bytes of its bank (float32 features). */
  bankBytes: number;
}

/** What one {@link PatchKnnDetector.learnTask} did. */
export interface PatchKnnTask {
  index: number;
  classes: string[];
  /** Wall time of feature extraction and coreset selection, in seconds. */
  seconds: number;
  /** Bytes of all banks after the task. */
  bankBytes: number;
}

/** A detection of {@link PatchKnnDetector.detect}: raw scores (no calibration), so `score === rawScore`. */
export interface PatchKnnDetection extends Detection {
  /** Per class considered: the mean over the image's patches of their k-NN distance to that class's bank (routing picks the smallest). */
  classDistances: Record<string, number>;
}

/** Progress of {@link PatchKnnDetector.learnTask}: `done` of `total` images of the task featurised and banked. */
export interface PatchKnnProgress {
  task: number;
  className: string;
  done: number;
  total: number;
  /** Seconds since the task started. */
  elapsed: number;
}

interface Bank {
  className: string;
  /** `[m, D]` features. */
  features: tf.Tensor2D;
  /** `[m]` squared norms of the features. */
  squaredNorms: tf.Tensor1D;
}

/** Elements of one query-by-bank distance block: memory of the search stays at 16 MiB per block. */
const BLOCK_ELEMENTS = 1 << 22;

function defaultStride(size: number): number {
  let s = 1;
  while (2 * s <= size / 32 && size % (2 * s) === 0) s *= 2;
  return s;
}

function positiveInteger(name: string, v: number, min = 1): number {
  if (!Number.isInteger(v) || v < min) throw new ConfigError(`PatchKnnDetector: ${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

/**
 * PatchCore-style anomaly detection with one patch memory bank per class. `learnTask` extracts the
 * features of a task's normal training images, averages them into a patch grid with a k x k
 * neighbourhood, and keeps a coreset of each class's patches. `detect` scores every patch of an image
 * by its distance to the nearest entries of all banks together (no task id), upsamples and blurs the
 * patch scores into the anomaly map, and takes the map's maximum as the image score.
 *
 * Not continual: it stores features of every class it has seen, so it cannot forget (a class's bank
 * never changes after its task), and its memory grows with every class.
 */
export class PatchKnnDetector {
  readonly config: PatchKnnConfig;
  readonly extractor: FeatureExtractor;
  readonly classes: PatchKnnClass[] = [];
  readonly tasks: PatchKnnTask[] = [];
  private readonly banks: Bank[] = [];

  constructor(opts: PatchKnnOptions = {}) {
    const imageSize = positiveInteger('imageSize', opts.imageSize ?? 32, 2);
    const stride = positiveInteger('stride', opts.stride ?? defaultStride(imageSize));
    if (imageSize % stride !== 0) throw new ConfigError(`PatchKnnDetector: stride ${stride} does not divide imageSize ${imageSize}`);
    const patch = positiveInteger('patch', opts.patch ?? 3);
    if (patch % 2 === 0) throw new ConfigError(`PatchKnnDetector: patch must be odd (a window centred on its cell), got ${patch}`);
    const grid = imageSize / stride;
    if (patch > 1 && (patch - 1) / 2 >= grid) throw new ConfigError(`PatchKnnDetector: patch ${patch} is too wide for a ${grid} x ${grid} grid (imageSize / stride)`);
    const coreset = opts.coreset ?? 'kcenter';
    if (coreset !== 'kcenter' && coreset !== 'random') throw new ConfigError(`PatchKnnDetector: coreset must be 'kcenter' or 'random', got '${coreset}'`);
    const blurSigma = opts.blurSigma ?? (4 * imageSize) / 224;
    if (!(blurSigma >= 0)) throw new ConfigError(`PatchKnnDetector: blurSigma must be >= 0, got ${blurSigma}`);
    this.config = {
      imageSize,
      stride,
      patch,
      bankSize: positiveInteger('bankSize', opts.bankSize ?? 4096),
      coreset,
      projectionDim: positiveInteger('projectionDim', opts.projectionDim ?? 128),
      k: positiveInteger('k', opts.k ?? 1),
      blurSigma,
      batchSize: positiveInteger('batchSize', opts.batchSize ?? 8),
      seed: positiveInteger('seed', opts.seed ?? 0, 0),
    };
    this.extractor = opts.extractor ?? new FilterBankExtractor();
  }

  /** Cells on a side of the patch grid (`imageSize / stride`). */
  get gridSize(): number {
    return this.config.imageSize / this.config.stride;
  }

  /** Class names with a bank, in learning order. */
  classNames(): string[] {
    return this.classes.map((c) => c.className);
  }

  /** Bytes of all banks (float32 features; the cached squared norms are not counted). */
  bankBytes(): number {
    return this.classes.reduce((a, c) => a + c.bankBytes, 0);
  }

  /** A copy of one class's bank, `[m, D]` row-major, with its shape. */
  bank(className: string): { data: Float32Array; shape: [number, number] } {
    const b = this.banks.find((x) => x.className === className);
    if (!b) throw new ConfigError(`PatchKnnDetector: no bank for class '${className}' (learned: ${this.classNames().join(', ') || 'none'})`);
    return { data: Float32Array.from(b.features.dataSync()), shape: [b.features.shape[0], b.features.shape[1]] };
  }

  /**
   * Build the bank of every class of the task from its normal training images (HWC RGB in [0, 1]
   * at `imageSize`). Banks of earlier classes are not touched.
   */
  async learnTask(task: TaskImages, opts: { onProgress?: (p: PatchKnnProgress) => void; signal?: AbortSignal } = {}): Promise<PatchKnnTask> {
    const started = Date.now();
    const index = this.tasks.length;
    const known = new Set(this.classNames());
    if (task.classes.length === 0) throw new ConfigError('PatchKnnDetector.learnTask: the task has no classes');
    if (new Set(task.classes).size !== task.classes.length) throw new ConfigError(`PatchKnnDetector.learnTask: a class is listed twice in [${task.classes.join(', ')}]`);
    for (const cls of task.classes) {
      if (known.has(cls)) throw new ConfigError(`PatchKnnDetector.learnTask: class '${cls}' already has a bank; a class is learned once`);
      const images = task.images.get(cls);
      if (!images || images.length === 0) throw new DataError(`PatchKnnDetector.learnTask: no training images for class '${cls}'`);
      images.forEach((img, i) => this.checkImage(img, `training image ${i} of class '${cls}'`));
    }
    const total = task.classes.reduce((a, c) => a + task.images.get(c)!.length, 0);
    let done = 0;
    const built: { info: PatchKnnClass; bank: Bank }[] = [];
    try {
      for (const cls of task.classes) {
        const images = task.images.get(cls)!;
        const candidates = this.patchFeatures(images, (n) => {
          opts.onProgress?.({ task: index, className: cls, done: done + n, total, elapsed: (Date.now() - started) / 1000 });
        });
        if (opts.signal?.aborted) {
          candidates.dispose();
          throw abortError();
        }
        const [n, dim] = candidates.shape;
        if (n < this.config.k) {
          candidates.dispose();
          throw new DataError(`PatchKnnDetector.learnTask: class '${cls}' has ${n} training patches, fewer than k = ${this.config.k}`);
        }
        const rng = new Rng(hashSeed(this.config.seed, 'patch-knn', cls));
        const chosen = this.selectCoreset(candidates, rng);
        const features = tf.keep(tf.gather(candidates, chosen)) as tf.Tensor2D;
        candidates.dispose();
        const squaredNorms = tf.keep(tf.tidy(() => tf.sum(tf.square(features), 1))) as tf.Tensor1D;
        built.push({
          bank: { className: cls, features, squaredNorms },
          info: { className: cls, task: index, trainImages: images.length, candidates: n, bankSize: features.shape[0], bankBytes: 4 * features.shape[0] * dim },
        });
        done += images.length;
        opts.onProgress?.({ task: index, className: cls, done, total, elapsed: (Date.now() - started) / 1000 });
      }
    } catch (err) {
      for (const b of built) {
        b.bank.features.dispose();
        b.bank.squaredNorms.dispose();
      }
      throw err;
    }
    for (const b of built) {
      this.banks.push(b.bank);
      this.classes.push(b.info);
    }
    const record: PatchKnnTask = { index, classes: [...task.classes], seconds: (Date.now() - started) / 1000, bankBytes: this.bankBytes() };
    this.tasks.push(record);
    return record;
  }

  /**
   * Score images (HWC RGB in [0, 1] at `imageSize`) with no task id: each patch's score is its k-NN
   * distance to the union of the banks of `opts.classes` (default: every class learned); the map is
   * the patch scores upsampled bilinearly to the image and blurred; the image score is the map's
   * maximum; the image is routed to the class whose bank is nearest on average over its patches.
   * Raw scores: `score === rawScore`.
   */
  detect(images: Float32Array[], opts: { classes?: string[] } = {}): PatchKnnDetection[] {
    if (this.banks.length === 0) throw new Error('PatchKnnDetector.detect: no class learned yet; call learnTask first');
    const banks = opts.classes
      ? opts.classes.map((c) => {
          const b = this.banks.find((x) => x.className === c);
          if (!b) throw new ConfigError(`PatchKnnDetector.detect: class '${c}' was never learned (learned: ${this.classNames().join(', ')})`);
          return b;
        })
      : this.banks;
    if (banks.length === 0) throw new ConfigError('PatchKnnDetector.detect: opts.classes is empty');
    images.forEach((img, i) => this.checkImage(img, `image ${i}`));
    const { imageSize: size, batchSize } = this.config;
    const g = this.gridSize;
    const out: PatchKnnDetection[] = [];
    for (let start = 0; start < images.length; start += batchSize) {
      const batch = images.slice(start, start + batchSize);
      const n = batch.length;
      const { maps, perClass } = tf.tidy(() => {
        const query = this.patchFeatures(batch);
        const querySq = tf.sum(tf.square(query), 1) as tf.Tensor1D;
        // [n*g*g, k] ascending per class; the union's k nearest are the k smallest of their concatenation.
        const nearest = banks.map((b) => this.nearest(query, querySq, b));
        const union = nearest.length === 1 ? nearest[0]! : (tf.neg(tf.topk(tf.neg(tf.concat(nearest, 1)), this.config.k).values) as tf.Tensor2D);
        const patchScores = tf.reshape(tf.mean(union, 1), [n, g, g, 1]) as tf.Tensor4D;
        const up = g === size ? patchScores : tf.image.resizeBilinear(patchScores, [size, size], false, true);
        const maps = tf.reshape(gaussianBlur(up, this.config.blurSigma), [n, size * size]);
        const perClass = tf.stack(nearest.map((d) => tf.mean(tf.reshape(tf.mean(d, 1), [n, g * g]), 1)), 1); // [n, classes]
        return { maps, perClass };
      });
      const mapData = maps.dataSync() as Float32Array;
      const classData = perClass.dataSync() as Float32Array;
      maps.dispose();
      perClass.dispose();
      for (let i = 0; i < n; i++) {
        const map = mapData.slice(i * size * size, (i + 1) * size * size);
        let score = Number.NEGATIVE_INFINITY;
        for (const v of map) if (v > score) score = v;
        const classDistances: Record<string, number> = {};
        let best = 0;
        banks.forEach((b, c) => {
          const d = classData[i * banks.length + c]!;
          classDistances[b.className] = d;
          if (d < classData[i * banks.length + best]!) best = c;
        });
        out.push({ score, rawScore: score, map, className: banks[best]!.className, classDistances });
      }
    }
    return out;
  }

  /** Release the banks (and the extractor's resources). */
  dispose(): void {
    for (const b of this.banks) {
      b.features.dispose();
      b.squaredNorms.dispose();
    }
    this.banks.length = 0;
    this.extractor.dispose?.();
  }

  private checkImage(img: Float32Array, what: string): void {
    const want = this.config.imageSize * this.config.imageSize * 3;
    if (!(img instanceof Float32Array) || img.length !== want) {
      throw new DataError(
        `PatchKnnDetector: ${what} has ${img?.length ?? 0} values; expected ${want} (HWC RGB at ${this.config.imageSize} x ${this.config.imageSize})`,
      );
    }
  }

  /**
   * Patch features of images, `[N * g * g, D]` (image-major, then row-major over the grid): every
   * extractor map resized to the image, concatenated over channels, averaged over `stride` blocks,
   * then over the k x k neighbourhood of each cell (reflect padding at the border).
   */
  private patchFeatures(images: Float32Array[], onBatch?: (done: number) => void): tf.Tensor2D {
    const { imageSize: size, stride, patch, batchSize } = this.config;
    const parts: tf.Tensor2D[] = [];
    for (let start = 0; start < images.length; start += batchSize) {
      const batch = images.slice(start, start + batchSize);
      parts.push(
        tf.tidy(() => {
          const data = new Float32Array(batch.length * size * size * 3);
          batch.forEach((img, i) => data.set(img, i * size * size * 3));
          const x = tf.tensor4d(data, [batch.length, size, size, 3]);
          const maps = this.extractor.extract(x).map((m) =>
            m.shape[1] === size && m.shape[2] === size ? m : tf.image.resizeBilinear(m, [size, size], false, true),
          );
          let f = (maps.length === 1 ? maps[0]! : tf.concat(maps, 3)) as tf.Tensor4D;
          if (stride > 1) f = tf.avgPool(f, stride, stride, 'valid');
          if (patch > 1) {
            const r = (patch - 1) / 2;
            const padded = tf.mirrorPad(f, [[0, 0], [r, r], [r, r], [0, 0]], 'reflect');
            f = tf.avgPool(padded, patch, 1, 'valid');
          }
          return tf.reshape(f, [-1, f.shape[3]]) as tf.Tensor2D;
        }),
      );
      onBatch?.(Math.min(start + batchSize, images.length));
    }
    const all = parts.length === 1 ? parts[0]! : (tf.concat(parts, 0) as tf.Tensor2D);
    if (parts.length > 1) for (const p of parts) p.dispose();
    return all;
  }

  /**
   * The `k` smallest Euclidean distances from every query row to the bank, `[q, k]` ascending:
   * `||a||² + ||b||² - 2 a·b` by matmul, in blocks of queries so at most {@link BLOCK_ELEMENTS}
   * distances exist at once. The blocks depend on this bank only, so a class's distances are the
   * same whatever other classes are learned.
   */
  private nearest(query: tf.Tensor2D, querySq: tf.Tensor1D, bank: Bank): tf.Tensor2D {
    const q = query.shape[0];
    const m = bank.features.shape[0];
    const k = Math.min(this.config.k, m);
    const rows = Math.max(1, Math.floor(BLOCK_ELEMENTS / m));
    const blocks: tf.Tensor2D[] = [];
    for (let s = 0; s < q; s += rows) {
      const len = Math.min(rows, q - s);
      blocks.push(
        tf.tidy(() => {
          const a = tf.slice(query, [s, 0], [len, -1]);
          const aSq = tf.reshape(tf.slice(querySq, [s], [len]), [len, 1]);
          const d2 = tf.sub(tf.add(aSq, tf.reshape(bank.squaredNorms, [1, m])), tf.mul(tf.matMul(a, bank.features, false, true), 2));
          const smallest = k === 1 ? tf.min(d2, 1, true) : tf.neg(tf.topk(tf.neg(d2), k).values);
          return tf.sqrt(tf.relu(smallest)) as tf.Tensor2D;
        }),
      );
    }
    return blocks.length === 1 ? blocks[0]! : (tf.concat(blocks, 0) as tf.Tensor2D);
  }

  /** Indices of the bank entries among `[n, D]` candidates (all of them when n <= bankSize). */
  private selectCoreset(candidates: tf.Tensor2D, rng: Rng): tf.Tensor1D {
    const [n, dim] = candidates.shape;
    const m = this.config.bankSize;
    if (n <= m) return tf.range(0, n, 1, 'int32') as tf.Tensor1D;
    if (this.config.coreset === 'random') {
      // Partial Fisher-Yates: the first m of a seeded permutation.
      const idx = Int32Array.from({ length: n }, (_, i) => i);
      for (let i = 0; i < m; i++) {
        const j = i + rng.int(n - i);
        [idx[i], idx[j]] = [idx[j]!, idx[i]!];
      }
      return tf.tensor1d(idx.slice(0, m), 'int32');
    }
    return greedyKCenter(candidates, m, rng, dim > this.config.projectionDim ? this.config.projectionDim : 0);
  }
}

/**
 * Greedy k-center (Gonzalez; PatchCore's coreset): start at a random candidate, then repeatedly add
 * the candidate farthest from everything chosen so far. With `projectDim > 0` the distances are
 * measured on a Gaussian random projection to that many dimensions (Johnson-Lindenstrauss).
 */
export function greedyKCenter(candidates: tf.Tensor2D, m: number, rng: Rng, projectDim = 0): tf.Tensor1D {
  const [n, dim] = candidates.shape;
  if (m >= n) return tf.range(0, n, 1, 'int32') as tf.Tensor1D;
  const x = tf.tidy(() => {
    if (projectDim <= 0) return tf.clone(candidates);
    const r = new Float32Array(dim * projectDim);
    for (let i = 0; i < r.length; i++) r[i] = rng.normal() / Math.sqrt(projectDim);
    return tf.matMul(candidates, tf.tensor2d(r, [dim, projectDim]));
  });
  const sq = tf.tidy(() => tf.sum(tf.square(x), 1));
  const chosen = new Int32Array(m);
  chosen[0] = rng.int(n);
  const distanceTo = (i: number) =>
    tf.tidy(() => {
      const c = tf.slice(x, [i, 0], [1, -1]);
      // Squared distances of every candidate to candidate i, [n].
      return tf.sub(tf.add(sq, tf.sum(tf.square(c))), tf.mul(tf.reshape(tf.matMul(x, c, false, true), [n]), 2));
    });
  let minD = distanceTo(chosen[0]);
  for (let s = 1; s < m; s++) {
    const next = tf.tidy(() => tf.argMax(minD).dataSync()[0]!);
    chosen[s] = next;
    const d = distanceTo(next);
    const updated = tf.minimum(minD, d);
    minD.dispose();
    d.dispose();
    minD = updated;
  }
  minD.dispose();
  sq.dispose();
  x.dispose();
  return tf.tensor1d(chosen, 'int32');
}

