// ESM runner of one smoke check: `node run.mjs <package>`. Packages load through `import()`, so
// Node picks their `import` export condition. Copied into the packaging test's temporary project.
import { createRequire } from 'node:module';

const { checks } = createRequire(import.meta.url)('./checks.cjs');
const name = process.argv[2];
console.log(await checks[name]((specifier) => import(specifier)));
