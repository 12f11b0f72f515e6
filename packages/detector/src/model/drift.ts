/**
 * Drift diagnosis: what a later task changed for a class learned earlier. Compares two detectors,
 * an earlier state (`before`, e.g. the checkpoint after task 1) and a later one (`after`, the
 * checkpoint after task 3), on normal images of the earlier state's classes:
 *
 * - parameters: how much each group of the weights that serve the class moved (relative L2 change),
 *   split by what protected it: a projection basis, nothing (biases, norms, embeddings left
 *   trainable), or per-task weights;
 * - gradient projection (shared weights): per protected layer, how much of the class's input energy
 *   lies outside the earlier basis (the part a later update may change) and how full the basis is;
 * - the class itself: how far its reconstruction, anomaly map and image scores moved, whether its
 *   start timestep or calibration changed, and how many of its images are still routed to it.
 *
 * Everything is measured, nothing is inferred: a group with a large change and a class whose map
 * moved name the cause. `ofm inspect --drift` prints it.
 */
import { ConfigError, type Ctx, DataError, context, tf } from '@ofm/tensor';
import type { ContinualDetector } from './detector';
import { to01Batch } from './detector';

/** How one group of parameters moved between the two states. */
export interface ParameterGroupDrift {
  /** `unet.input_blocks.1`, `unet.time_embed`, `amn.encoder`, ... (the first levels of the name). */
  group: string;
  /**
   * `projected`: conv/dense weights with a projection basis in `before`; `unprotected`: weights
   * without one, biases and norms (what projection does not cover); `per-task`: the class's own
   * task weights (nothing else trains them).
   */
  protection: 'projected' | 'unprotected' | 'per-task';
  parameters: number;
  /** ‖after − before‖ / ‖before‖ over the group. */
  relativeChange: number;
}

/** One protected layer's coverage of an earlier class's inputs (shared weights with projection). */
export interface LayerCoverage {
  layer: string;
  /** Basis rank / input dimension in `before`. */
  basisFraction: number;
  /** Share of the class's input energy (inference path at its start timestep) outside the basis. */
  uncoveredEnergy: number;
  /** ‖ΔW‖ / ‖W‖ of the layer's weight. */
  relativeChange: number;
}

/** How one earlier class moved. */
export interface ClassDrift {
  className: string;
  /** 0-based task that taught it. */
  task: number;
  tStartBefore: number;
  tStartAfter: number;
  /** Whether the stored calibration (score and map statistics, routing prototype) changed. */
  calibrationChanged: boolean;
  /** RMS of (reconstruction before − input), pixel values in [0, 1]: the scale of the next figure. */
  reconstructionError: number;
  /** RMS of (reconstruction after − reconstruction before). */
  reconstructionChange: number;
  /** Mean |map after − map before|, in standard deviations of the class's normal map values (before). */
  mapChange: number;
  /** Mean (raw score after − raw score before) of normal images, in the class's score standard deviations. */
  normalScoreShift: number;
  /** Share of the images routed to the class, before and after. */
  routedBefore: number;
  routedAfter: number;
}

/** What {@link measureDrift} returns. */
export interface DriftReport {
  before: { tasks: number; classes: string[] };
  after: { tasks: number; classes: string[] };
  weights: 'per-task' | 'shared';
  /** Per earlier class, its parameter groups (largest change first). */
  parameters: Record<string, ParameterGroupDrift[]>;
  /** Per earlier class, its protected layers (most uncovered energy first); empty without bases. */
  coverage: Record<string, LayerCoverage[]>;
  classes: ClassDrift[];
}

/** Group key of a parameter name: two levels, three for the UNet's numbered blocks. */
export function parameterGroup(name: string): string {
  const parts = name.split('.');
  const numbered = parts[1] === 'input_blocks' || parts[1] === 'output_blocks';
  return parts.slice(0, numbered ? 3 : 2).join('.');
}

/**
 * Measure what changed for the classes of `before` in `after` (see the module comment). `images`
 * holds normal images (HWC RGB in [0, 1] at the model size) of each class of `before`; a class
 * without images is skipped. Both detectors must share the config's model.
 */
export function measureDrift(
  before: ContinualDetector,
  after: ContinualDetector,
  images: ReadonlyMap<string, readonly Float32Array[]>,
): DriftReport {
  if (before.config.imageSize !== after.config.imageSize || before.config.continual.weights !== after.config.continual.weights) {
    throw new DataError('drift: the two detectors are not of the same model (image size or weights mode differ)');
  }
  const afterNames = new Set(after.classNames());
  const missing = before.classNames().filter((c) => !afterNames.has(c));
  if (missing.length) throw new ConfigError(`drift: the later detector has not learned ${missing.join(', ')}; give the later checkpoint second`);
  const perTask = before.config.continual.weights === 'per-task';
  const report: DriftReport = {
    before: { tasks: before.tasks.length, classes: before.classNames() },
    after: { tasks: after.tasks.length, classes: after.classNames() },
    weights: before.config.continual.weights,
    parameters: {},
    coverage: {},
    classes: [],
  };
  for (const cls of before.classNames()) {
    const imgs = images.get(cls);
    if (!imgs || imgs.length === 0) continue;
    const wb = before.classWeights(cls);
    const wa = after.classWeights(cls);
    report.parameters[cls] = parameterDrift(before, wb, wa, perTask);
    report.coverage[cls] = perTask ? [] : layerCoverage(before, cls, imgs, wb, wa);
    report.classes.push(classDrift(before, after, cls, imgs));
  }
  return report;
}

function parameterDrift(
  before: ContinualDetector,
  wb: Record<string, tf.Tensor>,
  wa: Record<string, tf.Tensor>,
  perTask: boolean,
): ParameterGroupDrift[] {
  const groups = new Map<string, ParameterGroupDrift & { num: number; den: number }>();
  for (const [name, b] of Object.entries(wb)) {
    const a = wa[name];
    if (!a) continue;
    const info = before.params.info(name);
    const projected = info.role === 'weight' && before.gpm.rank(info.layer ?? name.replace(/\.weight$/, '')) > 0;
    const protection = perTask ? 'per-task' : projected ? 'projected' : 'unprotected';
    const [num, den] = tf.tidy(() => [tf.sum(tf.square(tf.sub(a, b))).dataSync()[0]!, tf.sum(tf.square(b)).dataSync()[0]!]);
    const key = `${parameterGroup(name)}|${protection}`;
    const g = groups.get(key) ?? { group: parameterGroup(name), protection, parameters: 0, relativeChange: 0, num: 0, den: 0 };
    g.parameters += b.size;
    g.num += num!;
    g.den += den!;
    groups.set(key, g);
  }
  return [...groups.values()]
    .map(({ num, den, ...g }) => ({ ...g, relativeChange: Math.sqrt(num / Math.max(den, 1e-30)) }))
    .sort((x, y) => y.relativeChange - x.relativeChange);
}

function layerCoverage(
  before: ContinualDetector,
  cls: string,
  imgs: readonly Float32Array[],
  wb: Record<string, tf.Tensor>,
  wa: Record<string, tf.Tensor>,
): LayerCoverage[] {
  const energy = new Map<string, { total: number; inside: number }>();
  const tap: Ctx['tap'] = (event) => {
    const basis = before.gpm.basisTensor(event.layer);
    if (!basis) return;
    const [total, inside] = tf.tidy(() => [
      tf.sum(tf.square(event.input)).dataSync()[0]!,
      tf.sum(tf.square(tf.matMul(event.input, basis))).dataSync()[0]!,
    ]);
    const e = energy.get(event.layer) ?? { total: 0, inside: 0 };
    e.total += total!;
    e.inside += inside!;
    energy.set(event.layer, e);
  };
  const tStart = before.classOf(cls)!.tStart;
  before.useClassWeights(cls);
  const ctx = context(before.params, { tap });
  const b = before.config.inferenceBatch;
  for (let i = 0; i < imgs.length; i += b) {
    const x = to01Batch(imgs.slice(i, i + b) as Float32Array[], before.config.imageSize);
    before.reconstructBatch(x, tStart, ctx).dispose();
    x.dispose();
  }
  return [...energy.entries()]
    .map(([layer, e]) => {
      const weight = `${layer}.weight`;
      const inDim = before.gpm.basisTensor(layer)!.shape[0];
      const rel = wb[weight] && wa[weight] ? tf.tidy(() => tf.div(tf.norm(tf.sub(wa[weight]!, wb[weight]!)), tf.norm(wb[weight]!)).dataSync()[0]!) : 0;
      return {
        layer,
        basisFraction: before.gpm.rank(layer) / inDim,
        uncoveredEnergy: Math.max(0, 1 - e.inside / Math.max(e.total, 1e-30)),
        relativeChange: rel,
      };
    })
    .sort((x, y) => y.uncoveredEnergy - x.uncoveredEnergy);
}

function classDrift(before: ContinualDetector, after: ContinualDetector, cls: string, imgs: readonly Float32Array[]): ClassDrift {
  const cb = before.classOf(cls)!;
  const ca = after.classOf(cls)!;
  const list = [...imgs];
  const db = before.detect(list, { className: cls, reconstructions: true });
  const da = after.detect(list, { className: cls, reconstructions: true });
  let err = 0;
  let change = 0;
  let mapChange = 0;
  let pixels = 0;
  let shift = 0;
  list.forEach((img, i) => {
    const rb = db[i]!.reconstruction!;
    const ra = da[i]!.reconstruction!;
    for (let p = 0; p < img.length; p++) {
      err += (rb[p]! - img[p]!) ** 2;
      change += (ra[p]! - rb[p]!) ** 2;
    }
    // Both maps on the earlier calibration's scale: raw = z * std + mean.
    const mb = db[i]!.map;
    const ma = da[i]!.map;
    for (let p = 0; p < mb.length; p++) {
      const rawA = ma[p]! * ca.calibration.pixelStd + ca.calibration.pixelMean;
      const rawB = mb[p]! * cb.calibration.pixelStd + cb.calibration.pixelMean;
      mapChange += Math.abs(rawA - rawB) / cb.calibration.pixelStd;
    }
    pixels += mb.length;
    shift += (da[i]!.rawScore - db[i]!.rawScore) / cb.calibration.scoreStd;
  });
  const values = list.length * (list[0]?.length ?? 0);
  const routedBefore = before.route(list).filter((c) => c === cls).length / list.length;
  const routedAfter = after.route(list).filter((c) => c === cls).length / list.length;
  return {
    className: cls,
    task: cb.task,
    tStartBefore: cb.tStart,
    tStartAfter: ca.tStart,
    calibrationChanged: JSON.stringify(cb.calibration) !== JSON.stringify(ca.calibration),
    reconstructionError: Math.sqrt(err / values),
    reconstructionChange: Math.sqrt(change / values),
    mapChange: mapChange / pixels,
    normalScoreShift: shift / list.length,
    routedBefore,
    routedAfter,
  };
}
