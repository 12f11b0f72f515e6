/** Canvas panels: an image, a model-resolution RGB image, and the heatmap overlay. */
import { useEffect, useRef } from 'preact/hooks';
import { type OverlayOptions, drawBitmap, drawOverlay, drawRgb } from '../draw';

/** Drawing resolution of the panels (CSS scales them to the layout). */
const PANEL_PX = 384;

function useCanvas(draw: (canvas: HTMLCanvasElement) => void, deps: unknown[]) {
  const ref = useRef<HTMLCanvasElement>(null);
  // biome-ignore lint/correctness/useExhaustiveDependencies: redrawn exactly when the caller's inputs change
  useEffect(() => {
    if (ref.current) draw(ref.current);
  }, deps);
  return ref;
}

export function BitmapCanvas({ bitmap, label }: { bitmap: ImageBitmap; label: string }) {
  const ref = useCanvas((c) => drawBitmap(c, bitmap), [bitmap]);
  return <canvas ref={ref} width={PANEL_PX} height={PANEL_PX} aria-label={label} />;
}

export function RgbCanvas({ image, size, label }: { image: Float32Array; size: number; label: string }) {
  const ref = useCanvas((c) => drawRgb(c, image, size), [image, size]);
  return <canvas ref={ref} width={PANEL_PX} height={PANEL_PX} aria-label={label} />;
}

export function OverlayCanvas({ input, map, size, options }: { input: ImageBitmap; map: Float32Array; size: number; options: OverlayOptions }) {
  const ref = useCanvas((c) => drawOverlay(c, input, map, size, options), [input, map, size, options.range[0], options.range[1], options.peak, options.mask]);
  return <canvas ref={ref} width={PANEL_PX} height={PANEL_PX} aria-label="anomaly heatmap over the input" data-testid="heatmap" />;
}
