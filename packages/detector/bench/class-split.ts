/**
 * What the design-measurement scripts read for one class: its test images as a batch with their
 * labels and masks, and the last `nCal` training images as a calibration proxy for the held-out
 * normal split. Reads test images: for scripts that inform defaults, never for a product run.
 */
import type { MvtecDataset, Sample } from '@ofm/datasets';
import { tf } from '@ofm/tensor';

export interface ClassSplit {
  test: Sample[];
  /** Test images `[N, size, size, 3]`. */
  xt: tf.Tensor4D;
  /** Normal calibration images `[nCal, size, size, 3]` (the last training images). */
  xc: tf.Tensor4D;
  /** The other training images (the ones a product run would train on). */
  train: Sample[];
  labels: (0 | 1)[];
  /** Every test mask, concatenated (`N * size * size` bytes). */
  masks: Uint8Array;
}

/** A batch `[N, size, size, 3]` of the samples' images. */
export function batchOf(samples: Sample[], size: number): tf.Tensor4D {
  return tf.tensor4d(Float32Array.from(samples.flatMap((s) => Array.from(s.image))), [samples.length, size, size, 3]);
}

/** Load one class's {@link ClassSplit}; the caller disposes `xt` and `xc`. */
export async function loadClassSplit(dataset: MvtecDataset, className: string, size: number, nCal: number): Promise<ClassSplit> {
  const train: Sample[] = [];
  for await (const s of dataset.train(className)) train.push(s);
  const test: Sample[] = [];
  for await (const s of dataset.test(className)) test.push(s);
  const masks = new Uint8Array(test.length * size * size);
  test.forEach((s, i) => masks.set(s.mask, i * size * size));
  return {
    test,
    xt: batchOf(test, size),
    xc: batchOf(train.slice(train.length - nCal), size),
    train: train.slice(0, train.length - nCal),
    labels: test.map((s) => s.label),
    masks,
  };
}
