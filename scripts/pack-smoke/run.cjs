// CommonJS runner of one smoke check: `node run.cjs <package>`. Packages load through
// `require()`, so Node picks their `require` export condition. Copied into the packaging test's
// temporary project.
'use strict';
const { checks } = require('./checks.cjs');

const name = process.argv[2];
checks[name]((specifier) => Promise.resolve(require(specifier))).then(
  (summary) => console.log(summary),
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);
