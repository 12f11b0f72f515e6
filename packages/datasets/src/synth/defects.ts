/**
 * Defects drawn over a class's clean image: scratches, cracks, holes and stains. (Missing and
 * misplaced parts change the object itself and are drawn by the class.) Every defect is a shape
 * with a clear contrast to the surface, several pixels wide at 64 x 64, clipped to the class's
 * surface (the object, or the whole image for textures).
 */
import { type Canvas, type Rgb, clamp01, coverage, distToPolyline, mix } from './draw';

/** The kinds of defect the synthetic dataset draws. */
export type DefectKind = 'scratch' | 'hole' | 'stain' | 'crack' | 'missing' | 'misplaced';

/** All defect kinds, in a fixed order. */
export const DEFECT_KINDS: readonly DefectKind[] = ['scratch', 'hole', 'stain', 'crack', 'missing', 'misplaced'];

/** Defects drawn over the surface (the others are drawn by the class). */
export type OverlayKind = 'scratch' | 'hole' | 'stain' | 'crack';

export function isOverlayKind(kind: DefectKind): kind is OverlayKind {
  return kind === 'scratch' || kind === 'hole' || kind === 'stain' || kind === 'crack';
}

/** A drawn overlay defect, in normalised coordinates. */
export type OverlayDefect =
  | { kind: 'scratch'; paths: number[][]; width: number }
  | { kind: 'crack'; paths: number[][]; width: number }
  | { kind: 'hole'; cx: number; cy: number; radius: number; lobes: number[] }
  | { kind: 'stain'; cx: number; cy: number; radius: number; lobes: number[]; colour: Rgb; strength: number };

/** Where a defect may start: a random point on the surface, at least `margin` inside it. */
export type SurfacePoint = (r: () => number, margin: number) => [number, number];

/** Draw the shape of an overlay defect. */
export function sampleOverlay(kind: OverlayKind, r: () => number, point: SurfacePoint, stainColour: Rgb): OverlayDefect {
  switch (kind) {
    case 'scratch': {
      // A long, gently curved line (a quadratic curve), 2-3 pixels wide at 64 x 64.
      const [x0, y0] = point(r, 0.12);
      const angle = r() * 2 * Math.PI;
      const length = 0.22 + r() * 0.16;
      const x1 = x0 + Math.cos(angle) * length;
      const y1 = y0 + Math.sin(angle) * length;
      const bend = (r() - 0.5) * 0.5 * length;
      const cx = (x0 + x1) / 2 - Math.sin(angle) * bend;
      const cy = (y0 + y1) / 2 + Math.cos(angle) * bend;
      const path: number[] = [];
      for (let k = 0; k <= 10; k++) {
        const t = k / 10;
        path.push((1 - t) ** 2 * x0 + 2 * (1 - t) * t * cx + t * t * x1, (1 - t) ** 2 * y0 + 2 * (1 - t) * t * cy + t * t * y1);
      }
      return { kind: 'scratch', paths: [path], width: 0.034 + r() * 0.014 };
    }
    case 'crack': {
      // A jagged random walk, sometimes with a branch.
      const [x0, y0] = point(r, 0.1);
      const steps = 7;
      const length = 0.3 + r() * 0.15;
      const walk = (x: number, y: number, heading: number, n: number): number[] => {
        const path = [x, y];
        for (let k = 0; k < n; k++) {
          heading += (r() - 0.5) * 1.2;
          x += Math.cos(heading) * (length / steps);
          y += Math.sin(heading) * (length / steps);
          path.push(x, y);
        }
        return path;
      };
      const heading = r() * 2 * Math.PI;
      const main = walk(x0, y0, heading, steps);
      const paths = [main];
      if (r() < 0.5) {
        const k = 2 * (2 + Math.floor(r() * 3));
        paths.push(walk(main[k]!, main[k + 1]!, heading + (r() < 0.5 ? 1 : -1) * (0.7 + r() * 0.5), 3));
      }
      return { kind: 'crack', paths, width: 0.028 + r() * 0.01 };
    }
    case 'hole':
    case 'stain': {
      const radius = kind === 'hole' ? 0.045 + r() * 0.03 : 0.07 + r() * 0.04;
      const [cx, cy] = point(r, radius);
      // An irregular outline: a circle with a few low-frequency bumps.
      const lobes = [0.18 * r(), 2 + Math.floor(r() * 2), r() * 6.28, 0.12 * r(), 4 + Math.floor(r() * 3), r() * 6.28];
      if (kind === 'hole') return { kind, cx, cy, radius, lobes };
      return { kind, cx, cy, radius, lobes, colour: stainColour, strength: 0.55 + r() * 0.2 };
    }
  }
}

function blobDistance(x: number, y: number, cx: number, cy: number, radius: number, lobes: number[]): number {
  const dx = x - cx;
  const dy = y - cy;
  const angle = Math.atan2(dy, dx);
  let edge = 1;
  for (let k = 0; k + 2 < lobes.length; k += 3) edge += lobes[k]! * Math.sin(lobes[k + 1]! * angle + lobes[k + 2]!);
  return Math.sqrt(dx * dx + dy * dy) - radius * edge;
}

function luminance(c: Float32Array): number {
  return 0.299 * c[0]! + 0.587 * c[1]! + 0.114 * c[2]!;
}

/** Draw an overlay defect onto the canvas, clipped to the canvas's surface. */
export function drawOverlay(canvas: Canvas, defect: OverlayDefect): void {
  const px = canvas.px;
  canvas.paint((u, v, out, i) => {
    const surface = canvas.surface[i]!;
    if (surface <= 0) return;
    let alpha: number;
    switch (defect.kind) {
      case 'scratch':
      case 'crack': {
        let d = Number.POSITIVE_INFINITY;
        for (const path of defect.paths) d = Math.min(d, distToPolyline(u, v, path));
        alpha = coverage(d - defect.width / 2, px) * surface;
        if (alpha <= 0) return;
        if (defect.kind === 'crack') {
          for (let c = 0; c < 3; c++) out[c] = mix(out[c]!, out[c]! * 0.15, alpha);
        } else {
          // Scratches catch the light on dark surfaces and cut dark grooves into light ones.
          const light = luminance(out) < 0.5;
          for (let c = 0; c < 3; c++) out[c] = mix(out[c]!, light ? 0.92 : out[c]! * 0.3, alpha);
        }
        return;
      }
      case 'hole': {
        const d = blobDistance(u, v, defect.cx, defect.cy, defect.radius, defect.lobes);
        alpha = coverage(d, px) * surface;
        if (alpha <= 0) return;
        // Dark inside, a little lighter towards the rim (depth).
        const depth = clamp01(-d / defect.radius);
        const inside = 0.03 + 0.09 * (1 - depth);
        for (let c = 0; c < 3; c++) out[c] = mix(out[c]!, inside, alpha);
        return;
      }
      case 'stain': {
        const d = blobDistance(u, v, defect.cx, defect.cy, defect.radius, defect.lobes);
        alpha = coverage(d, 1.5 * px) * surface * defect.strength;
        if (alpha <= 0) return;
        for (let c = 0; c < 3; c++) out[c] = mix(out[c]!, defect.colour[c]!, alpha);
        return;
      }
    }
  });
}
