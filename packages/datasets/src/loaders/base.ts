/** The streaming machinery every loader shares (Node-only: decoding goes through sharp). */
import { DatasetError } from '../errors';
import { type SizeOption, resolveSize } from '../image';
import { readImage, readMaskFile } from '../io/node';
import { createRandom, shuffleInPlace } from '../random';
import type { AnomalyDataset, IterateOptions, Sample, SampleRef } from './types';

/** Options every loader takes. */
export interface LoaderOptions {
  /** Resize every image and mask to this size (the model's input size). Default: keep file sizes. */
  size?: SizeOption;
}

/** Order a split for iteration: file order, or a seeded shuffle; then the limit. */
export function orderRefs(refs: SampleRef[], options: IterateOptions): SampleRef[] {
  const ordered = options.shuffle ? shuffleInPlace(createRandom(options.seed ?? 0), [...refs]) : [...refs];
  return options.limit !== undefined ? ordered.slice(0, Math.max(0, options.limit)) : ordered;
}

/**
 * Decode refs lazily, keeping at most `prefetch` decodes in flight ahead of the consumer, so
 * decoding overlaps the consumer's work while memory stays bounded.
 */
export async function* streamSamples(
  refs: SampleRef[],
  load: (ref: SampleRef) => Promise<Sample>,
  prefetch = 2,
): AsyncGenerator<Sample> {
  const ahead = Math.max(1, Math.floor(prefetch));
  const pending: Array<Promise<Sample>> = [];
  let next = 0;
  const fill = () => {
    while (pending.length < ahead && next < refs.length) {
      const p = load(refs[next++]!);
      p.catch(() => {}); // rejections are rethrown when the consumer reaches this sample
      pending.push(p);
    }
  };
  fill();
  while (pending.length > 0) {
    const sample = await pending.shift()!;
    fill();
    yield sample;
  }
}

/** Common parts of the file-based datasets. */
export abstract class FileDataset implements AnomalyDataset {
  abstract readonly format: 'mvtec' | 'visa' | 'folder';
  abstract readonly hasMasks: boolean;
  /** The resolved target size, or undefined to keep each file's size. */
  readonly size: { width: number; height: number } | undefined;
  /** Threshold that binarises mask pixels (any colour channel above it = defect). */
  protected maskThreshold = 127;

  constructor(
    readonly root: string,
    readonly classes: readonly string[],
    options: LoaderOptions,
  ) {
    this.size = options.size === undefined ? undefined : resolveSize(options.size, 1, 1);
  }

  abstract trainFiles(className: string): Promise<SampleRef[]>;
  abstract testFiles(className: string): Promise<SampleRef[]>;

  /** Throw a {@link DatasetError} unless `className` is one of {@link classes}. */
  protected requireClass(className: string): void {
    if (!this.classes.includes(className)) {
      throw new DatasetError(`no class "${className}" in this ${this.format} dataset; its classes are: ${this.classes.join(', ')}`, this.root);
    }
  }

  async load(ref: SampleRef): Promise<Sample> {
    const image = await readImage(ref.path, { size: this.size });
    let mask: Uint8Array;
    if (ref.maskPath) {
      const m = await readMaskFile(ref.maskPath, { size: this.size, threshold: this.maskThreshold });
      if (m.sourceWidth !== image.sourceWidth || m.sourceHeight !== image.sourceHeight) {
        throw new DatasetError(
          `mask is ${m.sourceWidth} x ${m.sourceHeight} but its image ${ref.path} is ${image.sourceWidth} x ${image.sourceHeight}; expected the same size`,
          ref.maskPath,
        );
      }
      mask = m.data;
    } else {
      mask = new Uint8Array(image.width * image.height);
    }
    return {
      image: image.data,
      mask,
      label: ref.label,
      className: ref.className,
      defect: ref.defect,
      path: ref.path,
      ...(ref.maskPath ? { maskPath: ref.maskPath } : {}),
      width: image.width,
      height: image.height,
    };
  }

  async *train(className: string, options: IterateOptions = {}): AsyncGenerator<Sample> {
    const refs = orderRefs(await this.trainFiles(className), options);
    yield* streamSamples(refs, (r) => this.load(r), options.prefetch);
  }

  async *test(className: string, options: IterateOptions = {}): AsyncGenerator<Sample> {
    const refs = orderRefs(await this.testFiles(className), options);
    yield* streamSamples(refs, (r) => this.load(r), options.prefetch);
  }
}
