/**
 * Kernels that make training work, and run fast, on the tfjs 4.22 wasm backend.
 *
 * | kernel | why |
 * |---|---|
 * | Conv2DBackpropFilter | missing in wasm: no conv layer could train |
 * | Conv2DBackpropInput | built-in is a scalar loop (~1 GFLOP/s); replaced by XNNPACK paths |
 * | BatchMatMul | built-in runs batched/transposed products (all matMul gradients, attention) in a scalar loop; replaced |
 * | UnsortedSegmentSum | missing in wasm: the gradient of `tf.gather` (embedding tables) |
 * | Identity, Cast | built-ins copy; every tensor the tape saves is cloned, so activations were held twice. Now shared |
 * | Slice, SplitV | built-in copies the whole input out of the heap per slice; SplitV is the gradient of every concat |
 * | Transpose | built-in is a per-element loop (~0.3 GB/s); block copies / tiled transpose |
 *
 * Besides these replacements, JavaScript kernels for wasm and cpu back two nn.ts primitives:
 * `./group_norm` (group norm, optionally + SiLU) and `./upsample` (nearest upsampling); every other
 * backend (webgpu, webgl, tensorflow) gets the same kernels built from tfjs ops (`./composite`),
 * chosen by registration (`./ofm_kernels`).
 * {@link initBackend} registers them when it selects wasm; call {@link registerWasmKernels}
 * yourself only when you pick the backend by hand (`tf.setBackend('wasm')`).
 */
import { tf } from '../tf';
import { createBatchMatMulWasm } from './batch_mat_mul';
import { conv2DBackpropFilterWasm } from './conv2d_backprop_filter';
import { conv2DBackpropInputWasm } from './conv2d_backprop_input';
import { createCastWasm, identityWasm } from './share_data';

export {
  GROUP_NORM_BACKENDS,
  GROUP_NORM_GRAD_KERNEL,
  GROUP_NORM_KERNEL,
  type GroupNormAttrs,
  hasGroupNormKernel,
  registerGroupNormKernels,
} from './group_norm';
export { UPSAMPLE_GRAD_KERNEL, UPSAMPLE_KERNEL, hasUpsampleKernel, registerUpsampleKernels } from './upsample';
export {
  COMPOSITE_KERNELS,
  groupNormGradOps,
  groupNormOps,
  registerCompositeKernels,
  upsampleGradOps,
  upsampleOps,
} from './composite';
export { registerOfmKernels } from './ofm_kernels';
export { type WasmThreadsReport, enableWasmThreads } from './wasm_threads';
import { createSliceWasm, createSplitVWasm, createTransposeWasm } from './strided_copy';
import { unsortedSegmentSumWasm } from './unsorted_segment_sum';

/** Names of the kernels {@link registerWasmKernels} installs on the wasm backend. */
export const WASM_CUSTOM_KERNELS = [
  'Conv2DBackpropFilter',
  'Conv2DBackpropInput',
  'BatchMatMul',
  'UnsortedSegmentSum',
  'Identity',
  'Cast',
  'Slice',
  'SplitV',
  'Transpose',
] as const;

/** One of {@link WASM_CUSTOM_KERNELS}. */
export type WasmCustomKernel = (typeof WASM_CUSTOM_KERNELS)[number];

const BACKEND = 'wasm';

/** The built-in configs we replaced, to put back on {@link unregisterWasmKernels}. */
const replaced = new Map<WasmCustomKernel, tf.KernelConfig | undefined>();
/** Our kernel functions, by name, while registered. */
const installed = new Map<WasmCustomKernel, tf.KernelFunc>();

function makeKernel(name: WasmCustomKernel, builtin: tf.KernelConfig | undefined): tf.KernelFunc {
  switch (name) {
    case 'Conv2DBackpropFilter':
      return conv2DBackpropFilterWasm as unknown as tf.KernelFunc;
    case 'Conv2DBackpropInput':
      return conv2DBackpropInputWasm as unknown as tf.KernelFunc;
    case 'UnsortedSegmentSum':
      return unsortedSegmentSumWasm as unknown as tf.KernelFunc;
    case 'Identity':
      return identityWasm as unknown as tf.KernelFunc;
    case 'BatchMatMul':
      return createBatchMatMulWasm(need(name, builtin));
    case 'Cast':
      return createCastWasm(need(name, builtin));
    case 'Slice':
      return createSliceWasm(need(name, builtin));
    case 'SplitV':
      return createSplitVWasm(need(name, builtin));
    case 'Transpose':
      return createTransposeWasm(need(name, builtin));
  }
}

function need(name: WasmCustomKernel, builtin: tf.KernelConfig | undefined): tf.KernelFunc {
  if (builtin == null) throw new Error(`registerWasmKernels: the wasm backend has no built-in ${name} to build on`);
  return builtin.kernelFunc;
}

/**
 * Install the custom wasm kernels ({@link WASM_CUSTOM_KERNELS}) in tfjs's kernel registry.
 * Idempotent. Works before or after the wasm backend is initialised: a replaced kernel keeps
 * the built-in's `setupFunc`, which tfjs runs on every `setBackend('wasm')`.
 *
 * @returns the names of the custom kernels now registered.
 */
export function registerWasmKernels(): WasmCustomKernel[] {
  for (const name of WASM_CUSTOM_KERNELS) {
    const current = tf.getKernel(name, BACKEND);
    const ours = installed.get(name);
    if (ours != null && current?.kernelFunc === ours) continue;
    const kernelFunc = makeKernel(name, current);
    if (current != null) tf.unregisterKernel(name, BACKEND);
    tf.registerKernel({
      kernelName: name,
      backendName: BACKEND,
      kernelFunc,
      // The built-ins we delegate to (BatchMatMul, Cast, Transpose, ...) keep their setupFunc.
      setupFunc: current?.setupFunc,
      disposeFunc: current?.disposeFunc,
    });
    replaced.set(name, current);
    installed.set(name, kernelFunc);
  }
  return registeredWasmKernels();
}

/**
 * Put tfjs's own wasm kernels back (and remove the ones tfjs lacks). For benchmarks and tests
 * that compare against the built-in path.
 */
export function unregisterWasmKernels(): void {
  for (const name of WASM_CUSTOM_KERNELS) {
    const ours = installed.get(name);
    if (ours == null) continue;
    if (tf.getKernel(name, BACKEND)?.kernelFunc === ours) {
      tf.unregisterKernel(name, BACKEND);
      const original = replaced.get(name);
      if (original != null) tf.registerKernel(original);
    }
    installed.delete(name);
    replaced.delete(name);
  }
}

/** The custom kernels currently registered on the wasm backend (a subset of {@link WASM_CUSTOM_KERNELS}). */
export function registeredWasmKernels(): WasmCustomKernel[] {
  return WASM_CUSTOM_KERNELS.filter((name) => {
    const ours = installed.get(name);
    return ours != null && tf.getKernel(name, BACKEND)?.kernelFunc === ours;
  });
}
