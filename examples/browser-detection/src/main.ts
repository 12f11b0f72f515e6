/**
 * Anomaly detection in a browser page: start the fastest tfjs backend the browser offers (WebGPU
 * on a GPU, then WebGL, then WebAssembly, whose binaries are bundled by Vite as assets), load a
 * detector checkpoint over HTTP, and for each image the user picks show the calibrated score and
 * the anomaly heatmap. `@ofm/detector` and `@ofm/datasets` resolve to
 * their browser entry points (the `browser` export condition), which leave out fs and sharp.
 */
import { decodeImageInBrowser } from '@ofm/datasets';
import { loadDetector } from '@ofm/detector';
import { initBackend } from '@ofm/tensor';
import wasmPlain from '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-simd.wasm?url';
import wasmThreaded from '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.wasm?url';

/** Calibrated scores above this count as anomalous (standard deviations above the normal mean). */
const THRESHOLD = 3;

const status = document.querySelector<HTMLParagraphElement>('#status')!;
const result = document.querySelector<HTMLParagraphElement>('#result')!;
const fileInput = document.querySelector<HTMLInputElement>('#file')!;

/** Draw an `size x size` image: RGB in [0, 1], or a one-channel map through a colour ramp. */
function draw(canvas: HTMLCanvasElement, size: number, pixel: (i: number) => [number, number, number]): void {
  canvas.width = size;
  canvas.height = size;
  const image = new ImageData(size, size);
  for (let i = 0; i < size * size; i++) {
    const [r, g, b] = pixel(i);
    image.data.set([r * 255, g * 255, b * 255, 255], i * 4);
  }
  canvas.getContext('2d')!.putImageData(image, 0, 0);
}

try {
  // tfjs-backend-webgpu registers itself on import, where the browser has WebGPU.
  if ('gpu' in navigator) await import('@tensorflow/tfjs-backend-webgpu');
  const backend = await initBackend({
    wasmPaths: {
      'tfjs-backend-wasm.wasm': wasmPlain,
      'tfjs-backend-wasm-simd.wasm': wasmSimd,
      'tfjs-backend-wasm-threaded-simd.wasm': wasmThreaded,
    },
  });
  const { detector } = await loadDetector(new URL('model', document.baseURI).href);
  const size = detector.config.imageSize;
  status.textContent = `Model loaded (${detector.classNames().join(', ')}; ${backend.backend} backend). Pick an image.`;
  fileInput.disabled = false;
  fileInput.addEventListener('change', async () => {
    const file = fileInput.files?.[0];
    if (!file) return;
    try {
      const image = await decodeImageInBrowser(file, { size });
      // Asynchronous reads keep the page responsive while a GPU computes.
      const [found] = await detector.detectAsync([image.data]);
      const { map, score, className } = found!;
      draw(document.querySelector('#input')!, size, (i) => [image.data[3 * i]!, image.data[3 * i + 1]!, image.data[3 * i + 2]!]);
      // Map values are calibrated like scores: 0 is the normal mean, 6 and above saturate.
      draw(document.querySelector('#heatmap')!, size, (i) => {
        const v = Math.min(1, Math.max(0, map[i]! / 6));
        return [v, 0.2 * (1 - v), 1 - v];
      });
      result.dataset.score = String(score);
      result.textContent = `${file.name}: score ${score.toFixed(2)} (${className}) — ${score > THRESHOLD ? 'anomalous' : 'normal'}`;
    } catch (err) {
      result.textContent = `${file.name}: ${(err as Error).message}`;
    }
  });
} catch (err) {
  status.textContent = `Could not start: ${(err as Error).message}`;
}
