/**
 * Defects drawn into crops of real photographs: thin curved scratches, soft stains that tint the
 * surface (its texture stays visible), patches of another class's photograph with an irregular
 * soft edge, and holes (a dark irregular region, darker towards its core, with a soft shadow
 * around it). No Node APIs.
 *
 * Every defect changes the 8-bit image, and its mask is exactly the set of pixels that changed
 * by more than {@link PHOTO_MASK_TOLERANCE} levels in some channel; smaller changes (the far end
 * of the soft edges) are undone. Inside the defect's body every pixel is made to change by more
 * than the tolerance, also where the tint alone would not reach it (a stain over an almost black
 * crevice), so masks have no pinholes. A draw whose area misses the kind's range, or that
 * changed nothing, is drawn again.
 */
import { type SyntheticAnomaly, generateWithin, resolveAnomalyOptions } from '../anomalies/common';
import { proceduralTexture } from '../anomalies/perlin';
import type { RgbImage } from '../image';
import { PerlinNoise } from '../noise';
import { type RandomSource, intBelow, uniformIn } from '../random';
import { smoothstep } from '../synth/draw';

/** The kinds of defect drawn into photographs. */
export type PhotoDefectKind = 'scratch' | 'stain' | 'patch' | 'hole';

/** All photo defect kinds, in a fixed order. */
export const PHOTO_DEFECT_KINDS: readonly PhotoDefectKind[] = ['scratch', 'stain', 'patch', 'hole'];

/** Range of each kind's mask area, as a fraction of the image area (scratches are thin, so smaller). */
export const PHOTO_DEFECT_AREA: Readonly<Record<PhotoDefectKind, readonly [number, number]>> = {
  scratch: [0.003, 0.03],
  stain: [0.01, 0.08],
  patch: [0.01, 0.08],
  hole: [0.01, 0.08],
};

/** Largest change, in 8-bit levels, that does not count as defect (and is undone). */
export const PHOTO_MASK_TOLERANCE = 4;

/** Draws tried before giving up on a defect (never reached in practice). */
const MAX_ATTEMPTS = 60;

/** Round to 8-bit levels (as floats k / 255), clamped. */
export function quantize(data: Float32Array): Float32Array {
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    out[i] = Math.round((v < 0 ? 0 : v > 1 ? 1 : v) * 255) / 255;
  }
  return out;
}

function luminance(data: Float32Array, i: number): number {
  return 0.299 * data[3 * i]! + 0.587 * data[3 * i + 1]! + 0.114 * data[3 * i + 2]!;
}

/**
 * Quantize `out` and make every pixel of `body` differ from `clean` by more than the tolerance:
 * a pixel that moved too little is moved by tolerance + 1 levels, in the direction it moved (or
 * `direction(i)` where it did not move), or the other way where that would leave [0, 255].
 */
function settle(clean: Float32Array, out: Float32Array, body: Uint8Array, direction: (i: number) => number): Float32Array {
  const q = quantize(out);
  const step = PHOTO_MASK_TOLERANCE + 1;
  for (let i = 0; i < body.length; i++) {
    if (!body[i]) continue;
    let moved = 0;
    let sum = 0;
    const k = [0, 0, 0];
    for (let c = 0; c < 3; c++) {
      k[c] = Math.round(clean[3 * i + c]! * 255);
      const d = Math.round(q[3 * i + c]! * 255) - k[c]!;
      moved = Math.max(moved, Math.abs(d));
      sum += d;
    }
    if (moved > PHOTO_MASK_TOLERANCE) continue;
    let dir = sum !== 0 ? Math.sign(sum) : direction(i) >= 0 ? 1 : -1;
    if (k.some((v) => v + dir * step < 0 || v + dir * step > 255)) dir = -dir;
    for (let c = 0; c < 3; c++) q[3 * i + c] = Math.min(255, Math.max(0, k[c]! + dir * step)) / 255;
  }
  return q;
}

/** An irregular blob: a noisy elliptic falloff and the threshold above which `target` pixels lie. */
interface Blob {
  field: Float32Array;
  threshold: number;
  /** Field units per pixel near the edge (about 1 / radius). */
  slope: number;
  cx: number;
  cy: number;
}

/** Shape of a blob's outline: noise amplitude, stretch, octaves, and the noise's feature size (times the radius, at least `minFeature` pixels). */
interface BlobShape {
  roughness: number;
  maxElongation: number;
  octaves: number;
  feature: readonly [number, number];
  minFeature: number;
}

function drawBlob(rng: RandomSource, w: number, h: number, target: number, shape: BlobShape): Blob {
  const { roughness, maxElongation, octaves } = shape;
  const radius = Math.max(1.5, Math.sqrt(target / Math.PI));
  const elongation = uniformIn(rng, 1, maxElongation);
  const a = radius * Math.sqrt(elongation);
  const b = radius / Math.sqrt(elongation);
  const angle = rng.uniform() * Math.PI;
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  const reach = Math.min(a, Math.min(w, h) / 2);
  const cx = uniformIn(rng, Math.min(reach, w / 2), Math.max(w - reach, w / 2));
  const cy = uniformIn(rng, Math.min(reach, h / 2), Math.max(h - reach, h / 2));
  const noise = new PerlinNoise(rng);
  const frequency = 1 / Math.max(shape.minFeature, radius * uniformIn(rng, shape.feature[0], shape.feature[1]));
  const ox = rng.uniform() * 64;
  const oy = rng.uniform() * 64;
  const field = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const dx = x + 0.5 - cx;
      const dy = y + 0.5 - cy;
      const u = (dx * cos + dy * sin) / a;
      const v = (-dx * sin + dy * cos) / b;
      field[y * w + x] = 1 - Math.sqrt(u * u + v * v) + roughness * noise.fractal(ox + x * frequency, oy + y * frequency, octaves);
    }
  }
  const sorted = Float32Array.from(field).sort();
  const keep = Math.max(1, Math.min(w * h, Math.round(target)));
  return { field, threshold: sorted[w * h - keep]!, slope: 1 / radius, cx, cy };
}

/** Thin curved lines, lighter or darker than the surface they cross. */
function scratch(clean: RgbImage, rng: RandomSource, target: number): Float32Array {
  const { width: w, height: h, data } = clean;
  const unit = Math.min(w, h) / 128;
  const r = rng.uniform();
  const lineWidth = Math.max(1, uniformIn(rng, 1, 3) * unit);
  const side = Math.min(w, h);
  // No short dashes: each line is at least 0.3 of the side long.
  const totalLength = target / (lineWidth + 0.8);
  const count = Math.max(1, Math.min(r < 0.55 ? 1 : r < 0.85 ? 2 : 3, Math.floor(totalLength / (0.3 * side))));
  const shares = Array.from({ length: count }, () => 0.6 + rng.uniform());
  const shareSum = shares.reduce((p, q) => p + q, 0);
  const out = Float32Array.from(data);
  const body = new Uint8Array(w * h);
  const signs = new Float32Array(w * h);
  const noise = new PerlinNoise(rng);
  for (const share of shares) {
    const length = Math.min(0.95 * side, Math.max(0.3 * side, (totalLength * share) / shareSum));
    const angle = rng.uniform() * 2 * Math.PI;
    const dx = Math.cos(angle) * length;
    const dy = Math.sin(angle) * length;
    const margin = 2 * unit;
    const x0 = uniformIn(rng, margin + Math.max(0, -dx), Math.max(margin + Math.max(0, -dx), w - margin - Math.max(0, dx)));
    const y0 = uniformIn(rng, margin + Math.max(0, -dy), Math.max(margin + Math.max(0, -dy), h - margin - Math.max(0, dy)));
    const bend = (rng.uniform() - 0.5) * 0.45 * length;
    const mx = x0 + dx / 2 - Math.sin(angle) * bend;
    const my = y0 + dy / 2 + Math.cos(angle) * bend;
    const wobble = 0.7 * unit;
    const phase = rng.uniform() * 50;
    const points: number[] = [];
    const steps = 40;
    for (let k = 0; k <= steps; k++) {
      const t = k / steps;
      const bx = (1 - t) ** 2 * x0 + 2 * (1 - t) * t * mx + t * t * (x0 + dx);
      const by = (1 - t) ** 2 * y0 + 2 * (1 - t) * t * my + t * t * (y0 + dy);
      const jitter = wobble * noise.at(phase + t * 6, 0.5);
      points.push(bx - Math.sin(angle) * jitter, by + Math.cos(angle) * jitter);
    }
    // Light on dark surfaces, dark on light ones, either way in between.
    let lum = 0;
    for (let k = 0; k <= steps; k++) {
      const px = Math.min(w - 1, Math.max(0, Math.floor(points[2 * k]!)));
      const py = Math.min(h - 1, Math.max(0, Math.floor(points[2 * k + 1]!)));
      lum += luminance(data, py * w + px);
    }
    lum /= steps + 1;
    const light = lum < 0.38 ? true : lum > 0.62 ? false : rng.uniform() < 0.5;
    const strength = uniformIn(rng, 0.55, 0.9);
    const half = lineWidth / 2;
    const soft = 0.6 + 0.4 * rng.uniform();
    let xMin = w;
    let xMax = 0;
    let yMin = h;
    let yMax = 0;
    for (let k = 0; k < points.length; k += 2) {
      xMin = Math.min(xMin, points[k]!);
      xMax = Math.max(xMax, points[k]!);
      yMin = Math.min(yMin, points[k + 1]!);
      yMax = Math.max(yMax, points[k + 1]!);
    }
    const pad = half + 2;
    for (let y = Math.max(0, Math.floor(yMin - pad)); y <= Math.min(h - 1, Math.ceil(yMax + pad)); y++) {
      for (let x = Math.max(0, Math.floor(xMin - pad)); x <= Math.min(w - 1, Math.ceil(xMax + pad)); x++) {
        const px = x + 0.5;
        const py = y + 0.5;
        let best = Number.POSITIVE_INFINITY;
        let bestT = 0;
        for (let k = 0; k < steps; k++) {
          const ax = points[2 * k]!;
          const ay = points[2 * k + 1]!;
          const vx = points[2 * k + 2]! - ax;
          const vy = points[2 * k + 3]! - ay;
          const len2 = vx * vx + vy * vy;
          const s = len2 > 0 ? Math.min(1, Math.max(0, ((px - ax) * vx + (py - ay) * vy) / len2)) : 0;
          const ex = px - ax - s * vx;
          const ey = py - ay - s * vy;
          const d2 = ex * ex + ey * ey;
          if (d2 < best) {
            best = d2;
            bestT = (k + s) / steps;
          }
        }
        const d = Math.sqrt(best);
        const alpha = 1 - smoothstep(half - soft, half + soft, d);
        if (alpha <= 0) continue;
        // Fading in and out at the ends, uneven along the way.
        const profile = smoothstep(0, 0.1, bestT) * smoothstep(0, 0.1, 1 - bestT) * (0.8 + 0.2 * noise.at(phase + bestT * 9, 3.5));
        const a = alpha * strength * profile;
        const i = y * w + x;
        for (let c = 0; c < 3; c++) {
          const v = out[3 * i + c]!;
          out[3 * i + c] = light ? v + a * (0.96 - v) : v * (1 - 0.82 * a);
        }
        if (alpha >= 0.5 && profile >= 0.3) {
          body[i] = 1;
          signs[i] = light ? 1 : -1;
        }
      }
    }
  }
  return settle(data, out, body, (i) => signs[i]!);
}

/** Multiplicative colour factors of the stains at full strength (or `null`: a bleached, lighter stain). */
const STAIN_TINTS: ReadonlyArray<readonly [number, number, number] | null> = [
  [0.78, 0.6, 0.42], // brown (coffee, mud)
  [0.55, 0.56, 0.6], // dark, wet (water, oil)
  [0.95, 0.55, 0.3], // rust
  [0.72, 0.86, 0.55], // green (algae)
  null, // bleached
];

/** A soft irregular blob that tints the surface; the texture stays visible under it. */
function stain(clean: RgbImage, rng: RandomSource, target: number): Float32Array {
  const { width: w, height: h, data } = clean;
  const unit = Math.min(w, h) / 128;
  const blob = drawBlob(rng, w, h, target, { roughness: uniformIn(rng, 0.3, 0.6), maxElongation: 1.8, octaves: 3, feature: [0.45, 0.85], minFeature: 3 * unit });
  const soft = uniformIn(rng, 2, 8) * unit * blob.slope;
  const tint = STAIN_TINTS[intBelow(rng, STAIN_TINTS.length)]!;
  const strength = uniformIn(rng, 0.65, 1);
  const ring = rng.uniform() < 0.4 ? uniformIn(rng, 0.15, 0.3) : 0;
  const uneven = new PerlinNoise(rng);
  const frequency = 1 / (uniformIn(rng, 6, 14) * unit);
  const out = Float32Array.from(data);
  const body = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const f = blob.field[i]! - blob.threshold;
      const alpha = smoothstep(-soft / 2, soft / 2, f);
      if (alpha <= 0) continue;
      const rim = ring * Math.exp(-((f / soft) ** 2) * 2) * alpha;
      const a = Math.min(1, alpha * strength * (0.8 + 0.2 * uneven.at(x * frequency, y * frequency)) + rim);
      for (let c = 0; c < 3; c++) {
        const v = out[3 * i + c]!;
        out[3 * i + c] = tint ? v * (1 - a * (1 - tint[c]!)) : v + a * 0.4 * (1 - v);
      }
      if (alpha >= 0.5) body[i] = 1;
    }
  }
  return settle(data, out, body, () => (tint ? -1 : 1));
}

/** A piece of `foreign` (another surface, same size) pasted in with an irregular soft edge. */
function patch(clean: RgbImage, rng: RandomSource, target: number, foreign: RgbImage): Float32Array {
  const { width: w, height: h, data } = clean;
  const unit = Math.min(w, h) / 128;
  const blob = drawBlob(rng, w, h, target, { roughness: uniformIn(rng, 0.3, 0.7), maxElongation: 2.2, octaves: 3, feature: [0.45, 0.85], minFeature: 3 * unit });
  const soft = uniformIn(rng, 1, 2.5) * unit * blob.slope;
  const out = Float32Array.from(data);
  const body = new Uint8Array(w * h);
  for (let i = 0; i < w * h; i++) {
    const alpha = smoothstep(-soft / 2, soft / 2, blob.field[i]! - blob.threshold);
    if (alpha <= 0) continue;
    for (let c = 0; c < 3; c++) out[3 * i + c] = out[3 * i + c]! * (1 - alpha) + foreign.data[3 * i + c]! * alpha;
    if (alpha >= 0.5) body[i] = 1;
  }
  return settle(data, out, body, (i) => (luminance(data, i) < 0.5 ? 1 : -1));
}

/** Distance (chamfer 1 / √2) from every pixel to the nearest pixel of `set`; 0 on the set. */
function distanceTo(set: Uint8Array, w: number, h: number): Float32Array {
  const far = w + h;
  const d = new Float32Array(w * h);
  for (let i = 0; i < d.length; i++) d[i] = set[i] ? 0 : far;
  const diagonal = Math.SQRT2;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      let v = d[i]!;
      if (x > 0) v = Math.min(v, d[i - 1]! + 1);
      if (y > 0) {
        v = Math.min(v, d[i - w]! + 1);
        if (x > 0) v = Math.min(v, d[i - w - 1]! + diagonal);
        if (x < w - 1) v = Math.min(v, d[i - w + 1]! + diagonal);
      }
      d[i] = v;
    }
  }
  for (let y = h - 1; y >= 0; y--) {
    for (let x = w - 1; x >= 0; x--) {
      const i = y * w + x;
      let v = d[i]!;
      if (x < w - 1) v = Math.min(v, d[i + 1]! + 1);
      if (y < h - 1) {
        v = Math.min(v, d[i + w]! + 1);
        if (x < w - 1) v = Math.min(v, d[i + w + 1]! + diagonal);
        if (x > 0) v = Math.min(v, d[i + w - 1]! + diagonal);
      }
      d[i] = v;
    }
  }
  return d;
}

/** Where along the light direction a hole pixel looks for the rim (shares of the reach). */
const REACH_STEPS = [0.4, 0.6, 0.8, 1];

/**
 * A hole: a dark irregular region, darker towards its core; the rim on the side of the light
 * throws a shadow into it, the opposite inner wall catches some light; a soft shadow rings it.
 */
function hole(clean: RgbImage, rng: RandomSource, target: number): Float32Array {
  const { width: w, height: h, data } = clean;
  const unit = Math.min(w, h) / 128;
  const blob = drawBlob(rng, w, h, target, { roughness: uniformIn(rng, 0.15, 0.4), maxElongation: 1.6, octaves: 2, feature: [0.7, 1.2], minFeature: 6 * unit });
  const edge = 0.8 * unit * blob.slope;
  const inside = new Uint8Array(w * h);
  const outside = new Uint8Array(w * h);
  for (let i = 0; i < w * h; i++) {
    if (blob.field[i]! >= blob.threshold) inside[i] = 1;
    else outside[i] = 1;
  }
  const fromHole = distanceTo(inside, w, h);
  const fromRim = distanceTo(outside, w, h);
  let deepest = 1;
  for (let i = 0; i < w * h; i++) if (inside[i]) deepest = Math.max(deepest, fromRim[i]!);
  const rimWidth = uniformIn(rng, 1.5, 3.5) * unit;
  const rimStrength = uniformIn(rng, 0.25, 0.45);
  const wall = uniformIn(rng, 0.3, 0.5);
  const core = uniformIn(rng, 0.03, 0.08);
  const angle = rng.uniform() * 2 * Math.PI;
  // Towards the light, in pixels: the reach of the rim's shadow into the hole.
  const reach = Math.max(1.5, uniformIn(rng, 0.25, 0.5) * deepest);
  const lx = Math.cos(angle) * reach;
  const ly = Math.sin(angle) * reach;
  const holeAt = (x: number, y: number): boolean => {
    const xi = Math.floor(x);
    const yi = Math.floor(y);
    return xi >= 0 && yi >= 0 && xi < w && yi < h && inside[yi * w + xi] === 1;
  };
  const out = Float32Array.from(data);
  const body = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const alpha = smoothstep(-edge / 2, edge / 2, blob.field[i]! - blob.threshold);
      const outer = fromHole[i]!;
      if (alpha <= 0 && outer > 4 * rimWidth) continue;
      // Inside: darker with depth; in the rim's shadow on the light side, lit on the far wall.
      const depth = smoothstep(0, 0.8 * deepest, fromRim[i]!);
      let k = wall + (core - wall) * depth;
      let shadowed = 0;
      let lit = 0;
      for (const t of REACH_STEPS) {
        if (!holeAt(x + 0.5 - t * lx, y + 0.5 - t * ly)) shadowed++;
        if (!holeAt(x + 0.5 + t * lx, y + 0.5 + t * ly)) lit++;
      }
      k *= (1 - 0.45 * (shadowed / REACH_STEPS.length)) * (1 + 0.6 * (1 - depth) * (lit / REACH_STEPS.length));
      // Outside: a soft shadow that fades over a few pixels.
      const shade = 1 - rimStrength * Math.exp(-outer / rimWidth);
      const factor = shade + (k - shade) * alpha;
      for (let c = 0; c < 3; c++) out[3 * i + c] = out[3 * i + c]! * factor;
      if (alpha >= 0.5) body[i] = 1;
    }
  }
  return settle(data, out, body, () => -1);
}

/** Options of {@link drawPhotoDefect}. */
export interface PhotoDefectOptions {
  rng: RandomSource;
  /** Another class's surface, the size of the image, for `patch`; default a random procedural texture. */
  foreign?: RgbImage;
  /** Mask area range as a fraction of the image; default {@link PHOTO_DEFECT_AREA} of the kind. */
  areaRange?: readonly [number, number];
}

/**
 * Draw a defect of `kind` into `clean` (float RGB whose values are 8-bit levels k / 255, such as
 * a crop rounded to 8 bits). Returns the defective image (also 8-bit levels) and its mask: 1
 * exactly where it differs from `clean` by more than {@link PHOTO_MASK_TOLERANCE} levels.
 * @throws {Error} when no draw reaches the area range (for instance an image too small for it).
 */
export function drawPhotoDefect(clean: RgbImage, kind: PhotoDefectKind, options: PhotoDefectOptions): SyntheticAnomaly {
  const o = resolveAnomalyOptions(
    clean,
    {
      rng: options.rng,
      areaRange: options.areaRange ?? PHOTO_DEFECT_AREA[kind],
      tolerance: (PHOTO_MASK_TOLERANCE + 0.5) / 255,
      maxAttempts: MAX_ATTEMPTS,
    },
    `drawPhotoDefect (${kind})`,
  );
  const rng = options.rng;
  const foreign = kind === 'patch' ? (options.foreign ?? proceduralTexture(rng, clean.width, clean.height)) : undefined;
  const result = generateWithin(clean, o, (target) => {
    switch (kind) {
      case 'scratch':
        return scratch(clean, rng, target);
      case 'stain':
        return stain(clean, rng, target);
      case 'patch':
        return patch(clean, rng, target, foreign!);
      case 'hole':
        return hole(clean, rng, target);
    }
  });
  if (result.clean) {
    throw new Error(
      `drawPhotoDefect: no ${kind} of ${clean.width} x ${clean.height} pixels reached the area range [${o.minArea}, ${o.maxArea}] in ${MAX_ATTEMPTS} draws`,
    );
  }
  return result;
}
