import { tf } from '../src/tf';

/** Switch the global tfjs backend for a test file (cpu or wasm, via the package's own selection). */
export async function useBackend(name: 'cpu' | 'wasm'): Promise<void> {
  const mod = (await import('../src/index')) as Record<string, unknown>;
  const init = mod.initBackend as ((o: { backend: string; quiet?: boolean }) => Promise<unknown>) | undefined;
  if (init) await init({ backend: name, quiet: true });
  else if (name === 'cpu') await tf.setBackend('cpu');
  else throw new Error('initBackend is not available yet');
  if (tf.getBackend() !== name) throw new Error(`expected backend ${name}, got ${tf.getBackend()}`);
}
