/**
 * Drawing helpers for the synthetic dataset: signed distances in normalised image coordinates
 * (the image spans [0, 1] on both axes) turned into anti-aliased coverage.
 */

export type Rgb = readonly [number, number, number];

/** Coverage of a pixel by a shape at signed distance `d` (negative inside), for a pixel of size `px`. */
export function coverage(d: number, px: number): number {
  const c = 0.5 - d / px;
  return c <= 0 ? 0 : c >= 1 ? 1 : c;
}

export function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : x;
}

export function smoothstep(a: number, b: number, x: number): number {
  const t = clamp01((x - a) / (b - a));
  return t * t * (3 - 2 * t);
}

export function mix(a: number, b: number, t: number): number {
  return a + (b - a) * t;
}

/** Signed distance to an axis-aligned box of half-sizes (hx, hy) centred at the origin. */
export function sdBox(x: number, y: number, hx: number, hy: number): number {
  const dx = Math.abs(x) - hx;
  const dy = Math.abs(y) - hy;
  const ox = Math.max(dx, 0);
  const oy = Math.max(dy, 0);
  return Math.sqrt(ox * ox + oy * oy) + Math.min(Math.max(dx, dy), 0);
}

/** Distance from (x, y) to the segment (ax, ay)-(bx, by). */
export function distToSegment(x: number, y: number, ax: number, ay: number, bx: number, by: number): number {
  const vx = bx - ax;
  const vy = by - ay;
  const len2 = vx * vx + vy * vy;
  const t = len2 > 0 ? clamp01(((x - ax) * vx + (y - ay) * vy) / len2) : 0;
  const dx = x - (ax + t * vx);
  const dy = y - (ay + t * vy);
  return Math.sqrt(dx * dx + dy * dy);
}

/** Distance from (x, y) to a polyline given as flat [x0, y0, x1, y1, ...]. */
export function distToPolyline(x: number, y: number, points: readonly number[]): number {
  let best = Number.POSITIVE_INFINITY;
  for (let k = 0; k + 3 < points.length; k += 2) {
    const d = distToSegment(x, y, points[k]!, points[k + 1]!, points[k + 2]!, points[k + 3]!);
    if (d < best) best = d;
  }
  return best;
}

/** Rotate (x, y) by -angle (into a frame rotated by angle). */
export function toLocal(x: number, y: number, angle: number): [number, number] {
  const c = Math.cos(angle);
  const s = Math.sin(angle);
  return [x * c + y * s, -x * s + y * c];
}

/** An RGB float image being drawn, plus the coverage of the class's object (1 everywhere for textures). */
export class Canvas {
  readonly data: Float32Array;
  /** Where defects may appear (the object, or the whole image for textures), 0..1 per pixel. */
  readonly surface: Float32Array;
  /** Size of one pixel in normalised units. */
  readonly px: number;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.data = new Float32Array(width * height * 3);
    this.surface = new Float32Array(width * height).fill(1);
    this.px = 1 / Math.max(width, height);
  }

  /** Call `shade(u, v, out)` at every pixel centre; `out` receives the pixel's RGB. */
  paint(shade: (u: number, v: number, out: Float32Array, index: number) => void): void {
    const out = new Float32Array(3);
    for (let y = 0; y < this.height; y++) {
      const v = (y + 0.5) / this.height;
      for (let x = 0; x < this.width; x++) {
        const i = y * this.width + x;
        const k = 3 * i;
        out[0] = this.data[k]!;
        out[1] = this.data[k + 1]!;
        out[2] = this.data[k + 2]!;
        shade((x + 0.5) / this.width, v, out, i);
        this.data[k] = out[0]!;
        this.data[k + 1] = out[1]!;
        this.data[k + 2] = out[2]!;
      }
    }
  }
}

/** Add a colour jitter of ±amount per channel. */
export function jitterColour(base: Rgb, amount: number, r: () => number): Rgb {
  return [base[0] + (r() * 2 - 1) * amount, base[1] + (r() * 2 - 1) * amount, base[2] + (r() * 2 - 1) * amount];
}
