/**
 * What a preset costs per training step and per detected image on the current backend, with an
 * untrained model (the cost does not depend on the weights): `pnpm tsx bench/preset-cost.ts
 * [--presets quick,gpu-128] [--steps 2] [--backend wasm] [--micro-batch N]`. The training step
 * includes the AMN and the optimiser (`--micro-batch`: forward/backward in slices, for a heap that
 * cannot hold the whole batch, as wasm's 4 GiB cannot at 128 px); detection is one DDIM
 * reconstruction per fused start timestep, batch 1.
 */
import { initBackend, tf } from '@ofm/tensor';
import { renderSynthImage } from '@ofm/datasets';
import { ContinualDetector, DETECTOR_PRESETS, presetConfig } from '../src/index';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

async function main() {
  const names = arg('--presets', Object.keys(DETECTOR_PRESETS).join(',')).split(',');
  const steps = Number(arg('--steps', '2'));
  const microBatch = process.argv.includes('--micro-batch') ? Number(arg('--micro-batch', '0')) : undefined;
  const report = await initBackend({ backend: arg('--backend', 'wasm') as 'wasm' });
  console.log(`backend ${report.backend}; ${steps} timed training steps after 1 warm-up`);
  for (const name of names) {
    const config = presetConfig(name);
    const det = new ContinualDetector({ ...config, training: { ...config.training, steps: steps + 1, ...(microBatch ? { microBatch } : {}) } });
    const size = det.config.imageSize;
    const imgs = Array.from({ length: 8 }, (_, i) => renderSynthImage({ className: 'tiles', split: 'train', index: i, size }).image);
    const times: number[] = [];
    let last = 0;
    const abort = new AbortController();
    try {
      await det.learnTask(
        { classes: ['tiles'], images: new Map([['tiles', imgs]]) },
        {
          signal: abort.signal,
          onProgress: (p) => {
            if (p.phase !== 'train') return;
            const now = performance.now();
            if (p.done > 1) times.push((now - last) / 1000);
            last = now;
            if (p.done === steps + 1) abort.abort();
          },
        },
      );
    } catch (err) {
      if ((err as Error).name !== 'AbortError') throw err;
    }
    const x = tf.tensor4d(imgs[0]!, [1, size, size, 3]);
    const starts = det.config.reconstruction.fuse === false ? [det.config.reconstruction.tStartCandidates[0]!] : det.config.reconstruction.tStartCandidates;
    const t0 = performance.now();
    for (const t of starts) await det.reconstructBatch(x, t).data();
    const detect = (performance.now() - t0) / 1000;
    x.dispose();
    const params = det.params.count();
    const perStep = times.reduce((a, b) => a + b, 0) / Math.max(1, times.length);
    console.log(
      `${name.padEnd(8)} ${size} px, ${(params / 1e6).toFixed(2)} M parameters, batch ${det.config.training.batchSize}` +
        `${microBatch ? ` in slices of ${microBatch}` : ''}: ` +
        `${perStep.toFixed(2)} s per training step, ${detect.toFixed(2)} s per detected image (${starts.length} reconstruction(s) of ${det.config.reconstruction.steps} DDIM steps)`,
    );
    det.dispose();
  }
}
main();
