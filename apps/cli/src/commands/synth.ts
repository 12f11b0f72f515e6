import { SYNTH_CLASSES, type SynthProgress, type SynthSummary, synth } from '@ofm/datasets';
import type { Command } from 'commander';
import { CliError, EXIT } from '../errors';
import { integer } from '../util';

interface SynthCliOptions {
  out: string;
  classes?: string;
  size: string;
  nTrain: string;
  nTestGood: string;
  nTestBad: string;
  seed: string;
  overwrite?: boolean;
  json?: boolean;
}

/** `ofm synth --json`: the summary `synth` wrote to `<out>/synth.json`, plus the time it took. */
export type SynthJson = SynthSummary & { seconds: number };

function classList(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const names = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const known = SYNTH_CLASSES.map((c) => c.name);
  const unknown = names.filter((n) => !known.includes(n));
  if (names.length === 0 || unknown.length > 0) {
    const what = names.length === 0 ? 'no class given' : `unknown class${unknown.length > 1 ? 'es' : ''} ${unknown.map((u) => `"${u}"`).join(', ')}`;
    throw new CliError(`--classes: ${what}; choose from ${known.join(', ')}`);
  }
  return names;
}

/** Progress on stderr: a rewritten line on a terminal, else a line every few seconds; always the last. */
function progressReporter(total: number, out: string): (p: SynthProgress) => void {
  const tty = process.stderr.isTTY === true;
  const every = tty ? 100 : 2000;
  const started = Date.now();
  let last = started;
  let announced = false;
  return (p) => {
    // Announced with the first image, so that a run refused up front prints only its error.
    if (!announced) {
      process.stderr.write(`synth: generating ${total} images into ${out}\n`);
      announced = true;
    }
    const now = Date.now();
    if (p.done < p.total && now - last < every) return;
    last = now;
    const elapsed = (now - started) / 1000;
    const eta = p.done > 0 ? (elapsed / p.done) * (p.total - p.done) : 0;
    const line = `synth: ${p.done}/${p.total} images (${p.className}), ${elapsed.toFixed(1)} s${p.done < p.total ? `, about ${eta.toFixed(0)} s left` : ''}`;
    process.stderr.write(tty ? `\r${line}${p.done === p.total ? '\n' : ''}` : `${line}\n`);
  };
}

function formatSummary(s: SynthJson): string {
  const rows = s.classes.map((c) => {
    const bad = Object.entries(c.testBad);
    const badTotal = bad.reduce((a, [, n]) => a + (n ?? 0), 0);
    return [c.name, c.kind, String(c.train), String(c.testGood), `${badTotal}${bad.length ? ` (${bad.map(([d, n]) => `${d} ${n}`).join(', ')})` : ''}`];
  });
  const header = ['class', 'kind', 'train', 'test good', 'test defective'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 2 && i <= 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [
    `wrote ${s.images} images (${s.size} x ${s.size}, seed ${s.seed}) to ${s.out} in ${s.seconds.toFixed(1)} s`,
    line(header),
    ...rows.map(line),
    `load it with loadMvtec('${s.out}') from @ofm/datasets, or point ofm at it as an MVTec AD folder`,
    '',
  ].join('\n');
}

const CLASS_HELP = SYNTH_CLASSES.map((c) => `  ${c.name.padEnd(8)} ${c.kind.padEnd(8)} defects: ${c.defects.join(', ')}\n  ${''.padEnd(17)} ${c.description}`).join('\n');

/** `ofm synth`: generate the synthetic defect dataset in the MVTec AD layout. */
export function registerSynth(program: Command): void {
  program
    .command('synth')
    .description('generate the synthetic defect dataset (procedural textures and objects with exact defect masks) in the MVTec AD layout')
    .requiredOption('--out <dir>', 'target folder; must not exist or be empty (see --overwrite)')
    .option('--classes <list>', 'comma-separated classes (default: all)')
    .option('--size <n>', 'image side in pixels', '64')
    .option('--n-train <n>', 'normal training images per class', '60')
    .option('--n-test-good <n>', 'normal test images per class', '10')
    .option('--n-test-bad <n>', "defective test images per class, spread over the class's defect kinds", '12')
    .option('--seed <s>', 'seed: the same options and seed give the same bytes', '0')
    .option('--overwrite', 'replace a non-empty --out folder')
    .option('--json', 'print a JSON summary instead of the table')
    .addHelpText(
      'after',
      `\nClasses:\n${CLASS_HELP}\n\nLayout: <out>/<class>/train/good/000.png, <out>/<class>/test/{good,<defect>}/000.png,\n<out>/<class>/ground_truth/<defect>/000_mask.png (0/255), <out>/synth.json.\nThe dataset is written to a temporary folder next to <out> and renamed at the end:\na failed or interrupted run (Ctrl-C) leaves nothing behind.\n`,
    )
    .action(async (options: SynthCliOptions) => {
      const size = integer('--size', options.size, 8, 4096);
      const nTrain = integer('--n-train', options.nTrain, 1);
      const nTestGood = integer('--n-test-good', options.nTestGood, 0);
      const nTestBad = integer('--n-test-bad', options.nTestBad, 0);
      const seed = integer('--seed', options.seed, 0, 0xffffffff);
      const classes = classList(options.classes);
      const count = (classes?.length ?? SYNTH_CLASSES.length) * (nTrain + nTestGood + nTestBad);

      const controller = new AbortController();
      const interrupt = () => controller.abort(new CliError('interrupted; nothing was written', EXIT.interrupted));
      process.once('SIGINT', interrupt);
      process.once('SIGTERM', interrupt);
      const started = Date.now();
      let summary: SynthSummary;
      try {
        summary = await synth({
          out: options.out,
          classes,
          size,
          nTrain,
          nTestGood,
          nTestBad,
          seed,
          overwrite: options.overwrite === true,
          onProgress: progressReporter(count, options.out),
          signal: controller.signal,
        });
      } finally {
        process.off('SIGINT', interrupt);
        process.off('SIGTERM', interrupt);
      }
      const result: SynthJson = { ...summary, seconds: (Date.now() - started) / 1000 };
      process.stdout.write(options.json ? `${JSON.stringify(result, null, 2)}\n` : formatSummary(result));
    });
}
