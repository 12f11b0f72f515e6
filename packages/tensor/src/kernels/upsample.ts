/**
 * Nearest-neighbour upsampling of NHWC by an integer factor, and its gradient, as block copies.
 *
 * `upsampleNearest` in nn.ts was written as two broadcasts, because tfjs-backend-cpu 4.22's
 * ResizeNearestNeighborGrad is wrong for 2x; on wasm those broadcasts run the Tile kernel at
 * ~250 ns per output element (537 ms for a [4, 64, 64, 128] output), and wasm's own resize is
 * ~40 ns per element. Here each input pixel's channel vector is copied `factor` times into
 * an output row, which is then copied `factor - 1` times (memmoves); the gradient sums each
 * `factor x factor` block. Registered for wasm and cpu.
 */
import { tf } from '../tf';
import { JS_KERNEL_BACKENDS, type KernelArgs, type Storage } from './js_storage';

type TensorInfo = tf.TensorInfo;

/** Forward kernel: inputs `{x}` (NHWC float32), attrs `{factor}`, output `[N, H·f, W·f, C]`. */
export const UPSAMPLE_KERNEL = 'OfmUpsampleNearest';
/** Gradient kernel: inputs `{dy}`, attrs `{factor}`, output `[N, H, W, C]` (block sums). */
export const UPSAMPLE_GRAD_KERNEL = 'OfmUpsampleNearestGrad';

/** out[n, i, j, c] = x[n, floor(i / f), floor(j / f), c]. */
export function upsampleForward(
  x: Float32Array,
  xo: number,
  shape: readonly number[],
  f: number,
  out: Float32Array,
  oo: number,
): void {
  const [n, h, w, c] = shape as [number, number, number, number];
  const outRow = w * f * c;
  // On wasm x and out are the same heap (memmove within it); on cpu they are separate arrays.
  const sameArray = x.buffer === out.buffer && x.byteOffset === out.byteOffset;
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < h; i++) {
      const src = xo + (b * h + i) * w * c;
      const dst = oo + (b * h + i) * f * outRow;
      for (let j = 0; j < w; j++) {
        const s = src + j * c;
        const d = dst + j * f * c;
        for (let k = 0; k < f; k++) {
          if (c >= 32 && sameArray) out.copyWithin(d + k * c, s, s + c);
          else for (let ch = 0; ch < c; ch++) out[d + k * c + ch] = x[s + ch]!;
        }
      }
      for (let a = 1; a < f; a++) out.copyWithin(dst + a * outRow, dst, dst + outRow);
    }
  }
}

/** dx[n, i, j, c] = Σ over the f x f block of dy that (i, j) was copied to. */
export function upsampleBackward(
  dy: Float32Array,
  dyo: number,
  shape: readonly number[],
  f: number,
  dx: Float32Array,
  dxo: number,
): void {
  const [n, h, w, c] = shape as [number, number, number, number];
  const outRow = w * f * c;
  dx.fill(0, dxo, dxo + n * h * w * c);
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < h; i++) {
      const dst = dxo + (b * h + i) * w * c;
      for (let a = 0; a < f; a++) {
        const rowBase = dyo + ((b * h + i) * f + a) * outRow;
        for (let j = 0; j < w; j++) {
          const d = dst + j * c;
          for (let k = 0; k < f; k++) {
            const s = rowBase + (j * f + k) * c;
            for (let ch = 0; ch < c; ch++) dx[d + ch]! += dy[s + ch];
          }
        }
      }
    }
  }
}

function factorOf(name: string, t: TensorInfo, attrs: tf.NamedAttrMap | undefined): number {
  const f = (attrs as { factor?: number } | undefined)?.factor;
  if (t.shape.length !== 4 || t.dtype !== 'float32') {
    throw new Error(`${name}: expected a float32 NHWC tensor, got ${t.dtype} [${t.shape.join(', ')}]`);
  }
  if (f == null || !Number.isInteger(f) || f < 1) throw new Error(`${name}: factor must be a positive integer, got ${f}`);
  return f;
}

function forwardKernel(storage: (backend: unknown) => Storage) {
  return (args: KernelArgs): TensorInfo => {
    const x = args.inputs.x as TensorInfo;
    const f = factorOf(UPSAMPLE_KERNEL, x, args.attrs);
    const [n, h, w, c] = x.shape as [number, number, number, number];
    const st = storage(args.backend);
    const out = st.make([n, h * f, w * f, c]);
    upsampleForward(...st.read(x), x.shape, f, ...st.read(out));
    return out;
  };
}

function backwardKernel(storage: (backend: unknown) => Storage) {
  return (args: KernelArgs): TensorInfo => {
    const dy = args.inputs.dy as TensorInfo;
    const f = factorOf(UPSAMPLE_GRAD_KERNEL, dy, args.attrs);
    const [n, hf, wf, c] = dy.shape as [number, number, number, number];
    if (hf % f !== 0 || wf % f !== 0) throw new Error(`${UPSAMPLE_GRAD_KERNEL}: dy [${dy.shape.join(', ')}] is not a ${f}x upsampled shape`);
    const shape = [n, hf / f, wf / f, c];
    const st = storage(args.backend);
    const dx = st.make(shape);
    const [dyArray, dyo] = st.read(dy);
    upsampleBackward(dyArray, dyo, shape, f, ...st.read(dx));
    return dx;
  };
}

let registered = false;

/** Register the upsampling kernels (wasm, cpu) and the gradient. Idempotent. */
export function registerUpsampleKernels(): void {
  if (registered) return;
  registered = true;
  for (const [backendName, storage] of Object.entries(JS_KERNEL_BACKENDS)) {
    if (tf.getKernel(UPSAMPLE_KERNEL, backendName) == null) {
      tf.registerKernel({ kernelName: UPSAMPLE_KERNEL, backendName, kernelFunc: forwardKernel(storage) as unknown as tf.KernelFunc });
    }
    if (tf.getKernel(UPSAMPLE_GRAD_KERNEL, backendName) == null) {
      tf.registerKernel({ kernelName: UPSAMPLE_GRAD_KERNEL, backendName, kernelFunc: backwardKernel(storage) as unknown as tf.KernelFunc });
    }
  }
  if (tf.getGradient(UPSAMPLE_KERNEL) == null) {
    tf.registerGradient({
      kernelName: UPSAMPLE_KERNEL,
      gradFunc: (dy, _saved, attrs) => ({
        x: () => tf.engine().runKernel(UPSAMPLE_GRAD_KERNEL, { dy: dy as tf.Tensor }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor,
      }),
    });
  }
}

/** Whether the upsampling kernels are registered for `backendName`. */
export function hasUpsampleKernel(backendName: string): boolean {
  return tf.getKernel(UPSAMPLE_KERNEL, backendName) != null && tf.getGradient(UPSAMPLE_KERNEL) != null;
}
