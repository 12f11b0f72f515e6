/**
 * Writing the synthetic dataset to disk in the MVTec AD layout (Node-only). The dataset is
 * written to a temporary folder next to the target and renamed into place at the end, so a
 * failed or interrupted run never leaves a half-written dataset behind.
 */
import { join, resolve } from 'node:path';
import { AbortError, ConfigError } from '@ofm/errors';
import { writeDatasetAtomically } from '../io/dataset-writer';
import { SYNTH_CLASS_SPECS } from './classes';
import type { DefectKind } from './defects';
import { findClass, renderSynthImage } from './render';

/** Options of {@link synth}. */
export interface SynthOptions {
  /** Target folder; must not exist or be empty (unless {@link overwrite}). */
  out: string;
  /** Class names; default all (see `SYNTH_CLASSES`). */
  classes?: readonly string[];
  /** Image side in pixels; default 64. */
  size?: number;
  /** Normal training images per class; default 60. */
  nTrain?: number;
  /** Normal test images per class; default 10. */
  nTestGood?: number;
  /** Defective test images per class, spread evenly over the class's defect kinds; default 12. */
  nTestBad?: number;
  /** Seed; default 0. Same options, same bytes. */
  seed?: number;
  /** Replace a non-empty `out` folder; default false. */
  overwrite?: boolean;
  /** Called after every image. */
  onProgress?: (progress: SynthProgress) => void;
  /** Abort the run (the temporary folder is removed). */
  signal?: AbortSignal;
}

/** Progress of a {@link synth} run. */
export interface SynthProgress {
  done: number;
  total: number;
  className: string;
}

/** What {@link synth} wrote, per class. */
export interface SynthClassSummary {
  name: string;
  kind: 'texture' | 'object';
  train: number;
  testGood: number;
  /** Defective test images per defect kind. */
  testBad: Partial<Record<DefectKind, number>>;
}

/** The result of {@link synth}; also written to `<out>/synth.json`. */
export interface SynthSummary {
  out: string;
  size: number;
  seed: number;
  images: number;
  classes: SynthClassSummary[];
  generator: string;
}

const GENERATOR = '@ofm/datasets synth v1';

function count(name: string, value: number | undefined, fallback: number, min: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min) throw new ConfigError(`synth: ${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

/** The defect kind of the k-th defective image of a class, and its index within that kind. */
function defectSlot(defects: readonly DefectKind[], k: number): { defect: DefectKind; index: number } {
  return { defect: defects[k % defects.length]!, index: Math.floor(k / defects.length) };
}

/**
 * Generate the synthetic defect dataset and write it in the MVTec AD layout:
 * `<out>/<class>/train/good/000.png`, `<out>/<class>/test/{good,<defect>}/000.png`,
 * `<out>/<class>/ground_truth/<defect>/000_mask.png` (0/255), plus `<out>/synth.json`.
 * @throws {ConfigError} for an option out of range, an unknown class or a class listed twice.
 * @throws {DatasetError} when `out` exists and is not empty (without `overwrite`).
 */
export async function synth(options: SynthOptions): Promise<SynthSummary> {
  const out = resolve(options.out);
  const size = count('size', options.size, 64, 8);
  const nTrain = count('nTrain', options.nTrain, 60, 1);
  const nTestGood = count('nTestGood', options.nTestGood, 10, 0);
  const nTestBad = count('nTestBad', options.nTestBad, 12, 0);
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new ConfigError(`synth: seed must be an integer in [0, 2^32), got ${seed}`);
  const names = options.classes ?? SYNTH_CLASS_SPECS.map((c) => c.name);
  if (names.length === 0) throw new ConfigError('synth: give at least one class');
  const specs = names.map(findClass);
  if (new Set(names).size !== names.length) throw new ConfigError(`synth: a class is listed twice in ${names.join(', ')}`);

  const perClass = nTrain + nTestGood + nTestBad;
  const total = perClass * specs.length;
  const digits = Math.max(3, String(Math.max(nTrain, nTestGood, nTestBad) - 1).length);
  const fileName = (i: number) => String(i).padStart(digits, '0');

  return writeDatasetAtomically(out, { overwrite: options.overwrite }, async (writer) => {
    const summary: SynthSummary = { out, size, seed, images: total, classes: [], generator: GENERATOR };
    let done = 0;
    const step = (className: string) => {
      done++;
      options.onProgress?.({ done, total, className });
      if (options.signal?.aborted) throw options.signal.reason ?? new AbortError('synth: aborted');
    };
    for (const spec of specs) {
      const dir = spec.name;
      const rgb = (image: Uint8Array) => ({ data: image, width: size, height: size, channels: 3 as const });
      for (let i = 0; i < nTrain; i++) {
        const s = renderSynthImage({ className: spec.name, split: 'train', index: i, seed, size });
        await writer.png(join(dir, 'train', 'good', `${fileName(i)}.png`), rgb(s.image));
        step(spec.name);
      }
      for (let i = 0; i < nTestGood; i++) {
        const s = renderSynthImage({ className: spec.name, split: 'test', index: i, seed, size });
        await writer.png(join(dir, 'test', 'good', `${fileName(i)}.png`), rgb(s.image));
        step(spec.name);
      }
      const testBad: Partial<Record<DefectKind, number>> = {};
      for (let k = 0; k < nTestBad; k++) {
        const { defect, index } = defectSlot(spec.defects, k);
        const s = renderSynthImage({ className: spec.name, split: 'test', defect, index, seed, size });
        await writer.png(join(dir, 'test', defect, `${fileName(index)}.png`), rgb(s.image));
        const mask = Uint8Array.from(s.mask, (m) => (m ? 255 : 0));
        await writer.png(join(dir, 'ground_truth', defect, `${fileName(index)}_mask.png`), { data: mask, width: size, height: size, channels: 1 });
        testBad[defect] = (testBad[defect] ?? 0) + 1;
        step(spec.name);
      }
      summary.classes.push({ name: spec.name, kind: spec.kind, train: nTrain, testGood: nTestGood, testBad });
    }
    await writer.text('synth.json', `${JSON.stringify(summary, null, 2)}\n`);
    return summary;
  });
}
