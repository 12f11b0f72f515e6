import { ofmTsup } from '@ofm/tsup-preset';

// The command line: ESM only, no type declarations, a shebang on the bin.
export default ofmTsup({ entry: ['src/bin.ts', 'src/index.ts'], format: ['esm'], dts: false, banner: { js: '#!/usr/bin/env node' } });
