/**
 * Bundled samples: images of the synthetic defect dataset, rendered in the page by
 * `@ofm/datasets` (no image files shipped) for every class the model knows that is a synthetic
 * class: one good image and one per defect kind, each with its exact ground-truth mask. They are
 * test images of the dataset `ofm synth` writes with the default seed, at the model's size.
 */
import { type DefectKind, SYNTH_CLASSES, renderSynthImage } from '@ofm/datasets/browser';
import { type PreparedImage, modelInput } from './image';

/** One sample: which synthetic image it is. */
export interface SampleSpec {
  className: string;
  defect: DefectKind | 'good';
}

/** The samples for the classes a model knows (those that are synthetic classes). */
export function samplesFor(classNames: readonly string[]): SampleSpec[] {
  return SYNTH_CLASSES.filter((c) => classNames.includes(c.name)).flatMap((c) => [
    { className: c.name, defect: 'good' as const },
    ...c.defects.map((defect) => ({ className: c.name, defect })),
  ]);
}

/** Render a sample at the model's size, with its ground-truth mask. */
export async function renderSample(spec: SampleSpec, size: number): Promise<PreparedImage> {
  const synth = renderSynthImage({
    className: spec.className,
    split: 'test',
    defect: spec.defect,
    index: 0,
    size,
  });
  const rgba = new Uint8ClampedArray(size * size * 4);
  for (let i = 0; i < size * size; i++) {
    rgba.set(synth.image.subarray(i * 3, i * 3 + 3), i * 4);
    rgba[i * 4 + 3] = 255;
  }
  const preview = await createImageBitmap(new ImageData(rgba, size, size));
  return {
    name: `${spec.className} · ${spec.defect}`,
    width: size,
    height: size,
    input: await modelInput(preview, size),
    size,
    preview,
    mask: spec.defect === 'good' ? undefined : synth.mask,
  };
}
