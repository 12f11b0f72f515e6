/**
 * Training-step and reconstruction time of detector configs on the current backend: which model
 * sizes fit the quick start's time budget. `pnpm tsx bench/step-time.ts [--steps N]`.
 */
import { initBackend } from '@ofm/tensor';
import { renderSynthImage } from '@ofm/datasets';
import { ContinualDetector, type DetectorConfigInput } from '../src/index';

const steps = Number(process.argv[process.argv.indexOf('--steps') + 1] || 6);
const variants: Record<string, DetectorConfigInput> = {
  'default 64px': {},
  '64px mc16': { unet: { model_channels: 16 } as never },
  '32px mc32': { imageSize: 32, unet: { attention_resolutions: [8] } as never, amn: { enabled: true, hintChannels: [16, 32], dim: 32, layers: 2, heads: 4, ffn: 64, dropout: 0, maskSize: 5 } },
  '64px no AMN': { amn: { enabled: false } },
};

async function main() {
  const report = await initBackend({ backend: 'wasm' });
  console.log(`backend ${report.backend}`);
  for (const [name, cfg] of Object.entries(variants)) {
    const size = cfg.imageSize ?? 64;
    const det = new ContinualDetector({ ...cfg, training: { steps } });
    const imgs = Array.from({ length: 24 }, (_, i) => renderSynthImage({ className: 'tiles', split: 'train', index: i, size }).image);
    let last = Date.now();
    const times: number[] = [];
    await det.learnTask(
      { classes: ['tiles'], images: new Map([['tiles', imgs]]) },
      {
        onProgress: (p) => {
          if (p.phase === 'train') {
            const now = Date.now();
            times.push(now - last);
            last = now;
          }
        },
      },
    );
    const warm = times.slice(2);
    const median = warm.sort((a, b) => a - b)[Math.floor(warm.length / 2)]!;
    const t0 = Date.now();
    det.detect(imgs.slice(0, 16));
    const detectMs = Date.now() - t0;
    console.log(`${name.padEnd(14)} params ${(det.parameterCount() / 1e6).toFixed(2)}M  step ${median} ms (batch 8)  detect ${(detectMs / 16).toFixed(0)} ms/image`);
    det.dispose();
  }
}
main();
