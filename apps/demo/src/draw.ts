/**
 * Canvas drawing for the detection panels. Model-resolution images are enlarged without smoothing
 * (each model pixel stays visible, as in the report figures); the heatmap is a translucent colour
 * layer, smoothly enlarged over the input, whose opacity grows with the anomaly value, so that
 * normal regions stay readable. Colours come from the report figures' colormap (`heatColor`).
 */
import { heatColor, toRgbBytes } from '@ofm/detector/browser';

/** The colormap as a CSS gradient, for the legend (same stops as {@link heatColor}). */
export const HEAT_GRADIENT = `linear-gradient(to right, ${[0, 0.25, 0.5, 0.75, 1]
  .map((t) => `rgb(${heatColor(t).join(',')}) ${t * 100}%`)
  .join(', ')})`;

function context2d(canvas: HTMLCanvasElement): CanvasRenderingContext2D {
  const ctx = canvas.getContext('2d');
  if (!ctx) throw new Error('no 2-D canvas context');
  return ctx;
}

/** An RGBA canvas of `size` x `size` from HWC RGB in [0, 1]. */
function rgbLayer(image: Float32Array, size: number): OffscreenCanvas {
  const bytes = toRgbBytes(image);
  const rgba = new Uint8ClampedArray(size * size * 4);
  for (let i = 0; i < size * size; i++) {
    rgba.set(bytes.subarray(i * 3, i * 3 + 3), i * 4);
    rgba[i * 4 + 3] = 255;
  }
  const layer = new OffscreenCanvas(size, size);
  layer.getContext('2d')!.putImageData(new ImageData(rgba, size, size), 0, 0);
  return layer;
}

/** Draw a bitmap over the whole canvas; enlarged pixel-exact when it is smaller than the canvas. */
export function drawBitmap(canvas: HTMLCanvasElement, bitmap: CanvasImageSource & { width: number }): void {
  const ctx = context2d(canvas);
  ctx.imageSmoothingEnabled = bitmap.width >= canvas.width;
  ctx.imageSmoothingQuality = 'high';
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
}

/** Draw a model-resolution RGB image (HWC in [0, 1]) over the whole canvas. */
export function drawRgb(canvas: HTMLCanvasElement, image: Float32Array, size: number): void {
  drawBitmap(canvas, rgbLayer(image, size));
}

/** Options of {@link drawOverlay}. */
export interface OverlayOptions {
  /** Map values mapped to the ends of the colormap. */
  range: [number, number];
  /** Where to mark the peak (model pixels). */
  peak?: { x: number; y: number };
  /** Ground-truth mask (model size, 1 = defect), outlined when given. */
  mask?: Uint8Array;
}

/** The input, the heatmap over it, the peak marker and the ground-truth outline. */
export function drawOverlay(canvas: HTMLCanvasElement, input: ImageBitmap, map: Float32Array, size: number, opts: OverlayOptions): void {
  drawBitmap(canvas, input);
  const ctx = context2d(canvas);
  const [lo, hi] = opts.range;
  const rgba = new Uint8ClampedArray(size * size * 4);
  for (let i = 0; i < size * size; i++) {
    const t = Math.min(1, Math.max(0, (map[i]! - lo) / (hi - lo)));
    rgba.set(heatColor(t), i * 4);
    rgba[i * 4 + 3] = Math.round(255 * (0.25 + 0.5 * t));
  }
  const heat = new OffscreenCanvas(size, size);
  heat.getContext('2d')!.putImageData(new ImageData(rgba, size, size), 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(heat, 0, 0, canvas.width, canvas.height);
  const scale = canvas.width / size;
  if (opts.mask) outlineMask(ctx, opts.mask, size, scale);
  if (opts.peak) {
    const cx = (opts.peak.x + 0.5) * scale;
    const cy = (opts.peak.y + 0.5) * scale;
    ctx.lineWidth = Math.max(2, canvas.width / 160);
    for (const [color, r] of [['rgba(0,0,0,0.6)', 1.15], ['white', 1]] as const) {
      ctx.strokeStyle = color;
      ctx.beginPath();
      ctx.arc(cx, cy, Math.max(8, 1.5 * scale) * r, 0, 2 * Math.PI);
      ctx.stroke();
    }
  }
}

/** Outline the ground-truth mask: the edges between mask and non-mask pixels. */
function outlineMask(ctx: CanvasRenderingContext2D, mask: Uint8Array, size: number, scale: number): void {
  const at = (x: number, y: number) => (x >= 0 && y >= 0 && x < size && y < size ? mask[y * size + x]! : 0);
  const edge = (x0: number, y0: number, x1: number, y1: number) => {
    ctx.moveTo(x0 * scale, y0 * scale);
    ctx.lineTo(x1 * scale, y1 * scale);
  };
  ctx.beginPath();
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (!at(x, y)) continue;
      if (!at(x, y - 1)) edge(x, y, x + 1, y);
      if (!at(x, y + 1)) edge(x, y + 1, x + 1, y + 1);
      if (!at(x - 1, y)) edge(x, y, x, y + 1);
      if (!at(x + 1, y)) edge(x + 1, y, x + 1, y + 1);
    }
  }
  ctx.lineWidth = 2;
  ctx.strokeStyle = '#39ff88';
  ctx.stroke();
}
