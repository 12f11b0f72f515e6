/** The types every dataset loader shares. */

/** One image of a dataset, decoded and ready for a model. */
export interface Sample {
  /** HWC float32 RGB in [0, 1]. */
  image: Float32Array;
  /** One byte per pixel, 1 = defect; all zeros for normal images (and when the dataset has no masks). */
  mask: Uint8Array;
  /** 0 = normal, 1 = anomalous. */
  label: 0 | 1;
  className: string;
  /** Defect type ("good" for normal images). */
  defect: string;
  /** The image file. */
  path: string;
  /** The mask file, when there is one. */
  maskPath?: string;
  width: number;
  height: number;
}

/** Where a sample lives on disk, before decoding. */
export interface SampleRef {
  path: string;
  maskPath?: string;
  label: 0 | 1;
  className: string;
  defect: string;
}

/** How to walk a split. */
export interface IterateOptions {
  /** Shuffle the order (deterministically, see {@link seed}); default false (file order). */
  shuffle?: boolean;
  /** Seed of the shuffle; default 0. */
  seed?: number;
  /** Stop after this many samples. */
  limit?: number;
  /** Images decoded ahead of the consumer (bounded memory); default 2. */
  prefetch?: number;
}

/** A dataset of one or more classes, each with a normal-only train split and a mixed test split. */
export interface AnomalyDataset {
  /** The on-disk layout. */
  readonly format: 'mvtec' | 'visa' | 'folder';
  /** Root folder. */
  readonly root: string;
  /** Class names, sorted. */
  readonly classes: readonly string[];
  /** Whether anomalous test images come with ground-truth masks. */
  readonly hasMasks: boolean;
  /** The train split of a class (normal images only), as file references. */
  trainFiles(className: string): Promise<SampleRef[]>;
  /** The test split of a class (normal and anomalous), as file references. */
  testFiles(className: string): Promise<SampleRef[]>;
  /** Decode one referenced sample (image resized to the dataset's size, mask binarised). */
  load(ref: SampleRef): Promise<Sample>;
  /** Stream the train split: images are decoded one by one, never the whole set at once. */
  train(className: string, options?: IterateOptions): AsyncIterable<Sample>;
  /** Stream the test split. */
  test(className: string, options?: IterateOptions): AsyncIterable<Sample>;
}
