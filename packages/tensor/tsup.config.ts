import { ofmTsup } from '@ofm/tsup-preset';

export default ofmTsup({
  // No shims: tsup's ESM shim imports 'path' and 'url' at load time, which breaks browser bundles
  // (the web demo). The code reads `__filename` where it exists (CJS) and `import.meta.url`
  // otherwise, so the CJS build's empty `import.meta` is never read.
  esbuildOptions(options) {
    options.logOverride = { ...options.logOverride, 'empty-import-meta': 'silent' };
  },
});
