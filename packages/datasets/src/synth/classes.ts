/**
 * The classes of the synthetic defect dataset: three textures and three objects. Each is drawn
 * procedurally from a handful of random parameters (position, rotation, scale, colours, phase),
 * so that images vary naturally while the class keeps a clear, smooth structure that a small
 * model can learn at 32-64 pixels.
 */
import { PerlinNoise } from '../noise';
import { createRandom } from '../random';
import type { DefectKind, SurfacePoint } from './defects';
import { type Canvas, type Rgb, coverage, jitterColour, mix, sdBox, smoothstep, toLocal } from './draw';

/** Public description of a synthetic class. */
export interface SynthClassInfo {
  name: string;
  kind: 'texture' | 'object';
  /** The defect kinds its test split contains, in order. */
  defects: readonly DefectKind[];
  description: string;
}

/** A structural defect the class draws itself (a missing or displaced part). */
export interface PartDefect {
  kind: 'missing' | 'misplaced';
  /** Which part. */
  part: number;
  /** Class-specific geometry (angle, offset, radius...). */
  a: number;
  b: number;
}

/** One drawn instance of a class: its random parameters, closed over. */
export interface ClassDrawing {
  /** Paint the clean image (or the image with a part defect) and the surface where overlay defects may go. */
  paint(canvas: Canvas, part?: PartDefect): void;
  /** Random points on the surface, for overlay defects. */
  point: SurfacePoint;
  /** Draw a part defect (classes with missing/misplaced defects). */
  partDefect?(kind: 'missing' | 'misplaced', r: () => number): PartDefect;
}

/** A class: its description, its stain colour, and how to draw an instance. */
export interface SynthClassSpec extends SynthClassInfo {
  stainColour: Rgb;
  sample(r: () => number): ClassDrawing;
}

const texturePoint: SurfacePoint = (r, margin) => [margin + r() * (1 - 2 * margin), margin + r() * (1 - 2 * margin)];

/** Woven fabric: over-under threads, about eight per image side. */
const weave: SynthClassSpec = {
  name: 'weave',
  kind: 'texture',
  defects: ['hole', 'stain', 'scratch'],
  description: 'woven fabric, blue-grey threads over and under, about 8 per side',
  stainColour: [0.62, 0.42, 0.14],
  sample(r) {
    const period = 0.125 * (0.93 + 0.14 * r());
    const angle = (r() - 0.5) * 0.12;
    const pa = r();
    const pb = r();
    const warp = jitterColour([0.36, 0.44, 0.58], 0.035, r);
    const weft = jitterColour([0.44, 0.5, 0.6], 0.035, r);
    const noise = new PerlinNoise(createRandom(Math.floor(r() * 2 ** 32)));
    return {
      point: texturePoint,
      paint(canvas) {
        canvas.paint((u, v, out) => {
          const [x, y] = toLocal(u, v, angle);
          const a = x / period + pa;
          const b = y / period + pb;
          const fa = a - Math.floor(a);
          const fb = b - Math.floor(b);
          const warpOnTop = ((Math.floor(a) + Math.floor(b)) & 1) === 0;
          const across = Math.sqrt(Math.sin(Math.PI * (warpOnTop ? fa : fb)));
          const along = Math.sin(Math.PI * (warpOnTop ? fb : fa));
          const shade = (0.35 + 0.65 * across * (0.8 + 0.2 * along)) * (1 + 0.06 * noise.at(u * 3, v * 3));
          const c = warpOnTop ? warp : weft;
          for (let k = 0; k < 3; k++) out[k] = c[k]! * shade * 1.25;
        });
      },
    };
  },
};

/** Terracotta tiles with light grout, four per image side. */
const tiles: SynthClassSpec = {
  name: 'tiles',
  kind: 'texture',
  defects: ['crack', 'stain', 'hole'],
  description: 'terracotta tiles with light grout lines, about 4 per side, each tile a slightly different shade',
  stainColour: [0.2, 0.24, 0.2],
  sample(r) {
    const period = 0.25 * (0.95 + 0.1 * r());
    const ox = r();
    const oy = r();
    const angle = (r() - 0.5) * 0.06;
    const grout = 0.11 * period;
    const tile = jitterColour([0.74, 0.4, 0.26], 0.03, r);
    const groutColour = jitterColour([0.84, 0.82, 0.77], 0.02, r);
    const tileSeed = Math.floor(r() * 2 ** 32);
    const noise = new PerlinNoise(createRandom(Math.floor(r() * 2 ** 32)));
    return {
      point: texturePoint,
      paint(canvas) {
        const px = canvas.px;
        canvas.paint((u, v, out) => {
          const [x, y] = toLocal(u, v, angle);
          const a = x / period + ox;
          const b = y / period + oy;
          const ia = Math.floor(a);
          const ib = Math.floor(b);
          const fa = a - ia;
          const fb = b - ib;
          const edge = Math.min(fa, 1 - fa, fb, 1 - fb) * period;
          const inTile = coverage(grout / 2 - edge, px);
          // Per-tile shade from a hash of the tile's index.
          const h = Math.imul((ia * 73856093) ^ (ib * 19349663) ^ tileSeed, 0x9e3779b1) >>> 0;
          const shade = 0.92 + 0.16 * (h / 4294967296);
          const bevel = 0.86 + 0.14 * smoothstep(0, 0.045, edge - grout / 2);
          const mottle = 1 + 0.05 * noise.at(u * 9, v * 9);
          for (let k = 0; k < 3; k++) out[k] = mix(groutColour[k]!, tile[k]! * shade * bevel * mottle, inTile);
        });
      },
    };
  },
};

/** Wood grain: warped growth rings, five to seven across the image. */
const grain: SynthClassSpec = {
  name: 'grain',
  kind: 'texture',
  defects: ['scratch', 'crack', 'stain'],
  description: 'wood grain, warped dark growth rings on light brown, 5 to 7 per side, with fine fibres',
  stainColour: [0.18, 0.16, 0.22],
  sample(r) {
    const rings = 5 + 2 * r();
    const phase = r();
    const angle = (r() - 0.5) * 0.16;
    const warpAmount = 0.04 + 0.03 * r();
    const light = jitterColour([0.8, 0.6, 0.4], 0.03, r);
    const dark = jitterColour([0.5, 0.31, 0.17], 0.03, r);
    const noise = new PerlinNoise(createRandom(Math.floor(r() * 2 ** 32)));
    const o1 = r() * 50;
    const o2 = r() * 50;
    return {
      point: texturePoint,
      paint(canvas) {
        canvas.paint((u, v, out) => {
          const [x, y] = toLocal(u, v, angle);
          const w = y + warpAmount * noise.fractal(x * 1.5 + o1, y * 1.5 + o2, 2);
          const ring = w * rings + phase;
          const t = (0.5 + 0.5 * Math.cos(2 * Math.PI * ring)) ** 3;
          const fibre = 1 + 0.05 * noise.at(x * 3 + o2, y * 22 + o1);
          for (let k = 0; k < 3; k++) out[k] = mix(light[k]!, dark[k]!, t) * fibre;
        });
      },
    };
  },
};

/** A metal washer (annulus) on a dark background, lit from a random side. */
const washer: SynthClassSpec = {
  name: 'washer',
  kind: 'object',
  defects: ['scratch', 'crack', 'stain'],
  description: 'a brushed-metal washer (a ring) on a dark slate background, lit from a random side',
  stainColour: [0.55, 0.32, 0.12],
  sample(r) {
    const cx = 0.5 + (r() - 0.5) * 0.1;
    const cy = 0.5 + (r() - 0.5) * 0.1;
    const outer = 0.3 * (0.96 + 0.08 * r());
    const inner = 0.13 * (0.95 + 0.1 * r());
    const light = r() * 2 * Math.PI;
    const metal = jitterColour([0.62, 0.62, 0.6], 0.03, r);
    const background = jitterColour([0.16, 0.17, 0.2], 0.02, r);
    return {
      point(rr, margin) {
        const m = Math.min(margin, (outer - inner) / 2 - 0.01);
        const radius = inner + m + rr() * Math.max(0, outer - inner - 2 * m);
        const a = rr() * 2 * Math.PI;
        return [cx + radius * Math.cos(a), cy + radius * Math.sin(a)];
      },
      paint(canvas) {
        const px = canvas.px;
        canvas.paint((u, v, out, i) => {
          const dx = u - cx;
          const dy = v - cy;
          const rad = Math.sqrt(dx * dx + dy * dy);
          const cover = coverage(Math.max(rad - outer, inner - rad), px);
          canvas.surface[i] = cover;
          const theta = Math.atan2(dy, dx);
          const bevel = 0.78 + 0.22 * smoothstep(0, 0.035, Math.min(outer - rad, rad - inner));
          const shade = (0.74 + 0.22 * Math.cos(theta - light)) * bevel * (1 + 0.035 * Math.sin((2 * Math.PI * rad) / 0.05));
          for (let k = 0; k < 3; k++) out[k] = mix(background[k]!, metal[k]! * shade * 1.1, cover);
        });
      },
    };
  },
};

/** An integrated-circuit chip with four pins on two sides, on a green board. */
const chip: SynthClassSpec = {
  name: 'chip',
  kind: 'object',
  defects: ['missing', 'misplaced', 'scratch'],
  description: 'a dark chip with four silver pins on each of two sides and a pin-1 dot, on a green circuit board, slightly rotated',
  stainColour: [0.7, 0.62, 0.3],
  sample(r) {
    const cx = 0.5 + (r() - 0.5) * 0.08;
    const cy = 0.5 + (r() - 0.5) * 0.08;
    const angle = (r() - 0.5) * 0.4;
    const half = 0.2 * (0.97 + 0.06 * r());
    const pinLength = 0.1;
    const pinHalfWidth = 0.028;
    const body = jitterColour([0.17, 0.17, 0.19], 0.02, r);
    const pin = jitterColour([0.8, 0.8, 0.77], 0.03, r);
    const board = jitterColour([0.13, 0.37, 0.2], 0.025, r);
    const pins = 8;
    // Pin p: side -1 (left) for p < 4, +1 (right) otherwise; its centre along the side.
    const pinCentre = (p: number): [number, number] => {
      const side = p < 4 ? -1 : 1;
      const along = -half + ((p % 4) + 0.5) * ((2 * half) / 4);
      return [side * (half + pinLength / 2 - 0.01), along];
    };
    return {
      point(rr, margin) {
        const m = Math.min(margin, half - 0.02);
        const lx = (rr() * 2 - 1) * (half - m);
        const ly = (rr() * 2 - 1) * (half - m);
        const c = Math.cos(angle);
        const s = Math.sin(angle);
        return [cx + lx * c - ly * s, cy + lx * s + ly * c];
      },
      partDefect(kind, rr) {
        const part = Math.floor(rr() * pins);
        // misplaced: the pin is bent about its root by 35-60 degrees, up or down.
        const bend = (rr() < 0.5 ? -1 : 1) * (0.6 + rr() * 0.45);
        return { kind, part, a: kind === 'misplaced' ? bend : 0, b: 0 };
      },
      paint(canvas, part) {
        const px = canvas.px;
        canvas.paint((u, v, out, i) => {
          const [x, y] = toLocal(u - cx, v - cy, angle);
          let pinCover = 0;
          for (let p = 0; p < pins; p++) {
            if (part?.kind === 'missing' && part.part === p) continue;
            const [pxc, pyc] = pinCentre(p);
            let lx = x - pxc;
            let ly = y - pyc;
            if (part?.kind === 'misplaced' && part.part === p) {
              // The same pin rotated about its root on the body's edge.
              const side = p < 4 ? -1 : 1;
              const [rx, ry] = toLocal(x - side * half, y - pyc, side * part.a);
              lx = rx - side * (pinLength / 2 - 0.01);
              ly = ry;
            }
            pinCover = Math.max(pinCover, coverage(sdBox(lx, ly, pinLength / 2, pinHalfWidth), px));
          }
          const bodyCover = coverage(sdBox(x, y, half, half), px);
          const dot = coverage(Math.hypot(x + half * 0.62, y + half * 0.62) - 0.028, px);
          canvas.surface[i] = bodyCover;
          const sheen = 1 + 0.25 * smoothstep(half, -half, x + y);
          for (let k = 0; k < 3; k++) {
            let c = mix(board[k]!, pin[k]!, pinCover);
            c = mix(c, body[k]! * sheen, bodyCover);
            out[k] = mix(c, 0.45, dot * bodyCover);
          }
        });
      },
    };
  },
};

/** A white oval tablet with a score line, at any angle, on a dark blue background. */
const tablet: SynthClassSpec = {
  name: 'tablet',
  kind: 'object',
  defects: ['crack', 'stain', 'missing'],
  description: 'a white oval tablet with a score line across it, at any angle, on a dark blue background',
  stainColour: [0.75, 0.3, 0.2],
  sample(r) {
    const cx = 0.5 + (r() - 0.5) * 0.1;
    const cy = 0.5 + (r() - 0.5) * 0.1;
    const angle = r() * Math.PI;
    const a = 0.3 * (0.97 + 0.06 * r());
    const b = 0.17 * (0.97 + 0.06 * r());
    const light = r() * 2 * Math.PI;
    const colour = jitterColour([0.93, 0.91, 0.86], 0.02, r);
    const background = jitterColour([0.13, 0.17, 0.37], 0.025, r);
    const lx0 = Math.cos(light);
    const ly0 = Math.sin(light);
    return {
      point(rr, margin) {
        const t = rr() * 2 * Math.PI;
        const s = Math.sqrt(rr()) * Math.max(0, 1 - margin / b);
        const [x, y] = [a * s * Math.cos(t), b * s * Math.sin(t)];
        const c = Math.cos(angle);
        const sn = Math.sin(angle);
        return [cx + x * c - y * sn, cy + x * sn + y * c];
      },
      partDefect(kind, rr) {
        // missing: a bite out of the rim at angle `a`, radius `b`.
        return { kind, part: 0, a: rr() * 2 * Math.PI, b: 0.075 + rr() * 0.03 };
      },
      paint(canvas, part) {
        const px = canvas.px;
        canvas.paint((u, v, out, i) => {
          const [x, y] = toLocal(u - cx, v - cy, angle);
          const q = Math.sqrt((x / a) ** 2 + (y / b) ** 2);
          let cover = coverage((q - 1) * b, px);
          if (part?.kind === 'missing') {
            const bx = a * Math.cos(part.a);
            const by = b * Math.sin(part.a);
            cover *= 1 - coverage(Math.hypot(x - bx, y - by) - part.b, px);
          }
          canvas.surface[i] = cover;
          const z = Math.sqrt(Math.max(0, 1 - q * q));
          const shade = 0.8 + 0.14 * z + 0.06 * ((x / a) * lx0 + (y / b) * ly0);
          const groove = 1 - 0.3 * coverage(Math.abs(x) - 0.012, px);
          for (let k = 0; k < 3; k++) out[k] = mix(background[k]!, colour[k]! * shade * groove, cover);
        });
      },
    };
  },
};

/** Every synthetic class, textures first. */
export const SYNTH_CLASS_SPECS: readonly SynthClassSpec[] = [weave, tiles, grain, washer, chip, tablet];
