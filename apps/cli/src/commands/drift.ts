/**
 * `ofm inspect <ckpt> --drift <earlier>`: what the tasks learned after `<earlier>` changed for its
 * classes (see `measureDrift` in @ofm/detector). Loads both checkpoints and a few normal training
 * images of each earlier class from the dataset.
 */
import { errorKind } from '@ofm/errors';
import { type DataOptions, openDataset } from '../data';
import { CliError } from '../errors';
import { refuseWebgpuFallback } from './run-shared';

export interface DriftCliOptions extends DataOptions {
  images: number;
  backend?: string;
  json?: boolean;
}

export async function inspectDrift(later: string, earlier: string, o: DriftCliOptions): Promise<void> {
  const { initBackend } = await import('@ofm/tensor');
  const det = await import('@ofm/detector');
  refuseWebgpuFallback(await initBackend({ backend: o.backend as never }));
  const load = async (path: string, role: string) => {
    try {
      return (await det.loadDetector(path)).detector;
    } catch (err) {
      if (errorKind(err) === 'checkpoint') throw new CliError(`--drift: the ${role} checkpoint: ${(err as Error).message}`);
      throw err;
    }
  };
  const before = await load(earlier, 'earlier');
  const after = await load(later, 'later');
  try {
    const dataset = await openDataset(o, before.config.imageSize);
    const images = new Map<string, Float32Array[]>();
    for (const cls of before.classNames()) {
      if (!dataset.classes.includes(cls)) throw new CliError(`--data ${o.data} has no class '${cls}' (a class of ${earlier}); point --data at the dataset it was trained on`);
      const list: Float32Array[] = [];
      for await (const s of dataset.train(cls)) {
        list.push(s.image);
        if (list.length >= o.images) break;
      }
      images.set(cls, list);
    }
    // Checkpoints of different models, or given in the wrong order: a DataError or ConfigError (exit 2).
    const report = det.measureDrift(before, after, images);
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ earlier, later, ...report }, null, 2)}\n`);
      return;
    }
    process.stdout.write(`${renderDrift(earlier, later, report)}\n`);
  } finally {
    before.dispose();
    after.dispose();
  }
}

function renderDrift(earlier: string, later: string, r: ReturnType<typeof import('@ofm/detector').measureDrift>): string {
  const f = (v: number, d = 3) => v.toFixed(d);
  const lines = [
    `drift of the classes of ${earlier} (${r.before.tasks} task(s)) in ${later} (${r.after.tasks} task(s)), ${r.weights} weights`,
    '',
    'class         task  recon err  recon change  map change (std)  normal score shift (std)  t_start  calibration  routed before/after',
    ...r.classes.map(
      (c) =>
        `${c.className.padEnd(12).slice(0, 12)}  ${String(c.task + 1).padStart(4)}  ${f(c.reconstructionError).padStart(9)}  ${f(c.reconstructionChange).padStart(12)}  ${f(c.mapChange, 2).padStart(16)}  ${f(c.normalScoreShift, 2).padStart(24)}  ${`${c.tStartBefore}${c.tStartAfter !== c.tStartBefore ? `->${c.tStartAfter}` : ''}`.padStart(7)}  ${(c.calibrationChanged ? 'changed' : 'same').padStart(11)}  ${`${f(c.routedBefore, 2)}/${f(c.routedAfter, 2)}`.padStart(19)}`,
    ),
  ];
  for (const c of r.classes) {
    const groups = r.parameters[c.className] ?? [];
    lines.push('', `${c.className}: parameter groups by relative change (||after - before|| / ||before||)`, 'group                          protection   params  change');
    for (const g of groups.slice(0, 12)) {
      lines.push(`${g.group.padEnd(30).slice(0, 30)} ${g.protection.padEnd(11)}  ${String(g.parameters).padStart(6)}  ${f(g.relativeChange, 4).padStart(6)}`);
    }
    const cov = r.coverage[c.className] ?? [];
    if (cov.length) {
      lines.push('', `${c.className}: protected layers by input energy outside the earlier basis`, 'layer                                          basis used  uncovered  weight change');
      for (const l of cov.slice(0, 12)) {
        lines.push(`${l.layer.padEnd(45).slice(0, 45)}  ${`${(100 * l.basisFraction).toFixed(0)}%`.padStart(10)}  ${`${(100 * l.uncoveredEnergy).toFixed(2)}%`.padStart(9)}  ${f(l.relativeChange, 4).padStart(13)}`);
      }
    }
  }
  return lines.join('\n');
}
