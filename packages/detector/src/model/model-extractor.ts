/**
 * A {@link FeatureExtractor} over any tfjs model saved on disk (`model.json` + weight shards, as
 * written by `model.save('file://...')`, the tfjs converter, or `tensorflowjs_converter`): layers
 * models and graph models alike. The named layers (or graph nodes) are tapped and returned as
 * feature maps. Node only (reads files).
 */
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { ConfigError, DataError, tf } from '@ofm/tensor';
import type { FeatureExtractor } from './features';

/** Options of {@link TfjsModelExtractor.load}: where the model is, which layers to tap, and input preprocessing. */
export interface TfjsModelExtractorOptions {
  /** Directory holding `model.json`, or the path of the `model.json` itself. */
  path: string;
  /** Layer names (layers models) or node names (graph models) whose outputs are the features. */
  layers: string[];
  /** Resize the [0, 1] images to this square size before the model (default: keep). */
  inputSize?: number;
  /** Per-channel normalisation applied after scaling to `inputRange` (default ImageNet mean/std). */
  mean?: [number, number, number];
  /** Per-channel divisor applied after subtracting `mean` (default ImageNet std). */
  std?: [number, number, number];
  /** The range the model expects before mean/std (default [0, 1]). */
  inputRange?: [number, number];
}

const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];

export class TfjsModelExtractor implements FeatureExtractor {
  readonly name: string;
  private constructor(
    private readonly run: (x: tf.Tensor4D) => tf.Tensor[],
    private readonly opts: TfjsModelExtractorOptions,
    private readonly model: tf.LayersModel | tf.GraphModel,
  ) {
    this.name = `tfjs-model:${opts.layers.join('+')}`;
  }

  /** Load the model and check that every requested layer exists (one clear error otherwise). */
  static async load(opts: TfjsModelExtractorOptions): Promise<TfjsModelExtractor> {
    if (opts.layers.length === 0) throw new ConfigError('TfjsModelExtractor: give at least one layer name to tap');
    const jsonPath = opts.path.endsWith('.json') ? resolve(opts.path) : join(resolve(opts.path), 'model.json');
    let raw: string;
    try {
      raw = await readFile(jsonPath, 'utf8');
    } catch {
      throw new DataError(`cannot read the model file '${jsonPath}': expected a tfjs model.json (with its weight files) there`);
    }
    let json: {
      modelTopology?: unknown;
      format?: string;
      weightsManifest?: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
    };
    try {
      json = JSON.parse(raw);
    } catch (err) {
      throw new DataError(`'${jsonPath}' is not valid JSON: ${(err as Error).message}`);
    }
    if (!json.modelTopology || !json.weightsManifest) {
      throw new DataError(`'${jsonPath}' is not a tfjs model.json (it needs "modelTopology" and "weightsManifest")`);
    }
    const dir = dirname(jsonPath);
    const weightSpecs: tf.io.WeightsManifestEntry[] = [];
    const buffers: Uint8Array[] = [];
    for (const group of json.weightsManifest) {
      weightSpecs.push(...group.weights);
      for (const p of group.paths) {
        try {
          buffers.push(new Uint8Array(await readFile(join(dir, p))));
        } catch {
          throw new DataError(`weight file '${join(dir, p)}' named in '${jsonPath}' is missing`);
        }
      }
    }
    const total = buffers.reduce((n, b) => n + b.byteLength, 0);
    const weightData = new Uint8Array(total);
    let offset = 0;
    for (const b of buffers) {
      weightData.set(b, offset);
      offset += b.byteLength;
    }
    const artifacts: tf.io.ModelArtifacts = {
      modelTopology: json.modelTopology as tf.io.ModelArtifacts['modelTopology'],
      format: json.format,
      weightSpecs,
      weightData: weightData.buffer,
    };
    const isGraph = json.format === 'graph-model';
    if (isGraph) {
      const model = await tf.loadGraphModel(tf.io.fromMemory(artifacts));
      const known = new Set(Object.keys((model as unknown as { executor: { graph: { nodes: object } } }).executor.graph.nodes));
      const missing = opts.layers.filter((l) => !known.has(l.split(':')[0]!));
      if (missing.length) {
        throw new ConfigError(`graph model '${jsonPath}' has no node(s) ${missing.join(', ')}`);
      }
      const run = (x: tf.Tensor4D) => {
        const out = model.execute(x, opts.layers);
        return Array.isArray(out) ? out : [out];
      };
      return new TfjsModelExtractor(run, opts, model);
    }
    const model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
    const names = new Set(model.layers.map((l) => l.name));
    const missing = opts.layers.filter((l) => !names.has(l));
    if (missing.length) {
      throw new ConfigError(
        `layers model '${jsonPath}' has no layer(s) ${missing.join(', ')}; it has: ${[...names].slice(0, 30).join(', ')}`,
      );
    }
    const tapped = tf.model({
      inputs: model.inputs,
      outputs: opts.layers.map((l) => model.getLayer(l).output as tf.SymbolicTensor),
    });
    const run = (x: tf.Tensor4D) => {
      const out = tapped.predict(x);
      return Array.isArray(out) ? out : [out];
    };
    return new TfjsModelExtractor(run, opts, model);
  }

  /**
   * The outputs of the tapped layers, in `layers` order, for images `[N, H, W, 3]` in [0, 1]
   * (resized, rescaled and normalised as configured). Throws if a tapped output is not rank 4.
   */
  extract(images: tf.Tensor4D): tf.Tensor4D[] {
    return tf.tidy(() => {
      let x: tf.Tensor4D = images;
      if (this.opts.inputSize) x = tf.image.resizeBilinear(x, [this.opts.inputSize, this.opts.inputSize]);
      const [lo, hi] = this.opts.inputRange ?? [0, 1];
      if (lo !== 0 || hi !== 1) x = tf.add(tf.mul(x, hi - lo), lo);
      const mean = this.opts.mean ?? IMAGENET_MEAN;
      const std = this.opts.std ?? IMAGENET_STD;
      x = tf.div(tf.sub(x, tf.tensor1d(mean)), tf.tensor1d(std));
      return this.run(x).map((f) => {
        if (f.rank !== 4) throw new ConfigError(`tapped output has rank ${f.rank}; feature layers must give [N, h, w, C] maps`);
        return f as tf.Tensor4D;
      });
    });
  }

  /** Release the loaded model's weights; the extractor is unusable afterwards. */
  dispose(): void {
    this.model.dispose();
  }
}
