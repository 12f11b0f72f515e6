/**
 * Two days of data: `DIR/day1` holds one class of the synthetic defect dataset, `DIR/day2` another
 * (MVTec AD layout). The second training process only ever sees day 2.
 *
 *   tsx src/make-data.ts DIR [--size 32]
 */
import { join } from 'node:path';
import { synth } from '@ofm/datasets';

const [dir, ...rest] = process.argv.slice(2);
if (!dir) {
  console.error('usage: tsx src/make-data.ts DIR [--size N]');
  process.exit(2);
}
const sizeArg = rest.indexOf('--size');
const size = sizeArg >= 0 ? Number(rest[sizeArg + 1]) : 32;
const common = { size, nTrain: 12, nTestGood: 4, nTestBad: 4, seed: 1, overwrite: true };
await synth({ ...common, out: join(dir, 'day1'), classes: ['tiles'] });
await synth({ ...common, out: join(dir, 'day2'), classes: ['washer'] });
console.log(`wrote ${join(dir, 'day1')} (tiles) and ${join(dir, 'day2')} (washer), ${size} px`);
