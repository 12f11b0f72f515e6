/**
 * Rendering one image of the synthetic dataset, in memory (no Node APIs: usable in a browser).
 *
 * Each image depends only on (seed, class, split, defect, index). A defective test image is
 * drawn twice from the same parameters, with and without its defect, after the same lighting
 * and sensor noise; its mask is exactly the set of pixels where the two 8-bit images differ by
 * more than {@link MASK_TOLERANCE} levels, and the smaller differences (anti-aliased fringes) are
 * undone, so that defective and clean images differ on the mask and nowhere else.
 */
import { ConfigError } from '@ofm/errors';
import { createRandom, hashSeed } from '../random';
import { type ClassDrawing, SYNTH_CLASS_SPECS, type SynthClassInfo, type SynthClassSpec } from './classes';
import { type DefectKind, drawOverlay, isOverlayKind, sampleOverlay } from './defects';
import { Canvas } from './draw';

/** Largest change, in 8-bit levels, that does not count as defect (and is undone). */
export const MASK_TOLERANCE = 8;

/** The synthetic classes: name, kind, defect kinds, description. */
export const SYNTH_CLASSES: readonly SynthClassInfo[] = SYNTH_CLASS_SPECS.map(({ name, kind, defects, description }) => ({
  name,
  kind,
  defects,
  description,
}));

/** Which image to render. */
export interface SynthImageSpec {
  className: string;
  split: 'train' | 'test';
  /** "good" (default) or one of the class's defect kinds (test split only). */
  defect?: DefectKind | 'good';
  /** Index of the image within its (split, defect) folder. */
  index: number;
  /** Dataset seed; default 0. */
  seed?: number;
  /** Side of the square image in pixels; default 64. */
  size?: number;
}

/** A rendered image of a defect set: 8-bit RGB, with its defect-free twin and the exact defect mask. */
export interface RenderedImage<Defect extends string> {
  width: number;
  height: number;
  /** HWC RGB bytes. */
  image: Uint8Array;
  /** The same image without the defect (equal to {@link image} for good images). */
  good: Uint8Array;
  /** 1 where {@link image} differs from {@link good}, else 0. */
  mask: Uint8Array;
  className: string;
  defect: Defect | 'good';
}

/** A rendered synthetic image. */
export type SynthImage = RenderedImage<DefectKind>;

export function findClass(name: string): SynthClassSpec {
  const spec = SYNTH_CLASS_SPECS.find((c) => c.name === name);
  if (!spec) {
    throw new ConfigError(`unknown synthetic class "${name}"; the classes are: ${SYNTH_CLASS_SPECS.map((c) => c.name).join(', ')}`);
  }
  return spec;
}

/** Smallest defect, in pixels: defects that end up smaller (clipped away) are drawn again. */
function minDefectPixels(width: number, height: number): number {
  return Math.max(6, Math.round(0.004 * width * height));
}

/** Lighting and sensor noise, identical for an image and its defect-free twin. */
function finish(canvas: Canvas, seed: number): Uint8Array {
  const r = createRandom(seed);
  const exposure = 0.94 + 0.12 * r.uniform();
  const gradientAngle = r.uniform() * 2 * Math.PI;
  const gradient = 0.12 * r.uniform();
  const gx = Math.cos(gradientAngle) * gradient;
  const gy = Math.sin(gradientAngle) * gradient;
  const sigma = 0.008 + 0.006 * r.uniform();
  const { width, height, data } = canvas;
  const out = new Uint8Array(data.length);
  // Gaussian noise from Box-Muller pairs (both values used).
  let spare = Number.NaN;
  const gaussian = (): number => {
    if (!Number.isNaN(spare)) {
      const g = spare;
      spare = Number.NaN;
      return g;
    }
    const radius = Math.sqrt(-2 * Math.log(1 - r.uniform()));
    const angle = 2 * Math.PI * r.uniform();
    spare = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  };
  for (let y = 0; y < height; y++) {
    const v = (y + 0.5) / height - 0.5;
    for (let x = 0; x < width; x++) {
      const u = (x + 0.5) / width - 0.5;
      const light = exposure * (1 + gx * u * 2 + gy * v * 2) * (1 - 0.12 * (u * u + v * v));
      const i = 3 * (y * width + x);
      for (let c = 0; c < 3; c++) {
        const value = Math.round((data[i + c]! * light + sigma * gaussian()) * 255);
        out[i + c] = value < 0 ? 0 : value > 255 ? 255 : value;
      }
    }
  }
  return out;
}

function draw(drawing: ClassDrawing, size: number, apply?: (canvas: Canvas) => void): Canvas {
  const canvas = new Canvas(size, size);
  apply ? apply(canvas) : drawing.paint(canvas);
  return canvas;
}

/** Render one image of the synthetic dataset (see the module notes). Deterministic. */
export function renderSynthImage(spec: SynthImageSpec): SynthImage {
  const cls = findClass(spec.className);
  const size = spec.size ?? 64;
  const seed = spec.seed ?? 0;
  const defect = spec.defect ?? 'good';
  if (!Number.isInteger(size) || size < 8) throw new RangeError(`size must be an integer of at least 8, got ${size}`);
  if (!Number.isInteger(spec.index) || spec.index < 0) throw new RangeError(`index must be a non-negative integer, got ${spec.index}`);
  if (defect !== 'good') {
    if (spec.split !== 'test') throw new RangeError('defective images belong to the test split');
    if (!cls.defects.includes(defect)) {
      throw new RangeError(`class "${cls.name}" has no "${defect}" defect; its defects are: ${cls.defects.join(', ')}`);
    }
  }
  const key = [cls.name, spec.split, defect, spec.index] as const;
  const params = createRandom(hashSeed(seed, ...key));
  const drawing = cls.sample(() => params.uniform());
  const noiseSeed = hashSeed(seed, ...key, 'noise');
  const good = finish(draw(drawing, size), noiseSeed);
  const n = size * size;
  if (defect === 'good') {
    return { width: size, height: size, image: good, good, mask: new Uint8Array(n), className: cls.name, defect };
  }

  const minPixels = minDefectPixels(size, size);
  for (let attempt = 0; attempt < 50; attempt++) {
    const dr = createRandom(hashSeed(seed, ...key, 'defect', attempt));
    const r = () => dr.uniform();
    let canvas: Canvas;
    if (isOverlayKind(defect)) {
      canvas = draw(drawing, size);
      drawOverlay(canvas, sampleOverlay(defect, r, drawing.point, cls.stainColour));
    } else {
      const part = drawing.partDefect!(defect, r);
      canvas = draw(drawing, size, (c) => drawing.paint(c, part));
    }
    const image = finish(canvas, noiseSeed);
    const mask = new Uint8Array(n);
    let area = 0;
    for (let i = 0; i < n; i++) {
      const k = 3 * i;
      const d = Math.max(Math.abs(image[k]! - good[k]!), Math.abs(image[k + 1]! - good[k + 1]!), Math.abs(image[k + 2]! - good[k + 2]!));
      if (d > MASK_TOLERANCE) {
        mask[i] = 1;
        area++;
      } else {
        image[k] = good[k]!;
        image[k + 1] = good[k + 1]!;
        image[k + 2] = good[k + 2]!;
      }
    }
    if (area >= minPixels) return { width: size, height: size, image, good, mask, className: cls.name, defect };
  }
  throw new Error(`renderSynthImage: could not draw a visible ${defect} on ${cls.name} #${spec.index} (size ${size})`);
}
