import { ofmTsup } from '@ofm/tsup-preset';

// index: Node (training runs, reports, saving, export); browser: no Node APIs; experiments: the
// benchmarks behind `ofm bench` (Node).
export default ofmTsup({ entry: ['src/index.ts', 'src/browser.ts', 'src/experiments.ts'] });
