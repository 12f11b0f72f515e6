import { ofmTsup } from '@ofm/tsup-preset';

// index: Node (loaders, sharp IO, synth to disk); browser: no Node APIs.
export default ofmTsup({ entry: ['src/index.ts', 'src/browser.ts'], external: ['sharp'] });
