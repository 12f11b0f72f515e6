/**
 * Which implementation of the project's own kernels (fused group norm, nearest upsampling) serves
 * a backend: the JavaScript kernels of `./group_norm` and `./upsample` on wasm and cpu, the
 * tfjs-ops kernels of `./composite` on every other backend. The ops in nn.ts call
 * {@link registerOfmKernels} for the active backend and then always run the kernel.
 */
import { registerCompositeKernels } from './composite';
import { GROUP_NORM_BACKENDS, GROUP_NORM_GRAD_KERNEL, GROUP_NORM_KERNEL, registerGroupNormKernels } from './group_norm';
import { UPSAMPLE_GRAD_KERNEL, UPSAMPLE_KERNEL, registerUpsampleKernels } from './upsample';

const done = new Map<string, { names: string[]; implementation: 'javascript' | 'tfjs-ops' }>();

/**
 * Register the project's kernels for `backendName` (idempotent) and their gradients.
 * @returns the kernel names and which implementation serves them there.
 */
export function registerOfmKernels(backendName: string): { names: string[]; implementation: 'javascript' | 'tfjs-ops' } {
  const known = done.get(backendName);
  if (known != null) return known;
  registerGroupNormKernels();
  registerUpsampleKernels();
  const result = (GROUP_NORM_BACKENDS as readonly string[]).includes(backendName)
    ? { names: [GROUP_NORM_KERNEL, GROUP_NORM_GRAD_KERNEL, UPSAMPLE_KERNEL, UPSAMPLE_GRAD_KERNEL], implementation: 'javascript' as const }
    : { names: registerCompositeKernels(backendName), implementation: 'tfjs-ops' as const };
  done.set(backendName, result);
  return result;
}
