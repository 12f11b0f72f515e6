// Sums the vitest JSON reports (<package>/.vitest/results.json) into the one line CI reads:
// "N passed, N failed". A package that has a test script but wrote no report counts as a failure.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

let passed = 0;
let failed = 0;
let skipped = 0;
const problems = [];
for (const group of ['packages', 'apps', 'examples']) {
  if (!existsSync(group)) continue;
  for (const name of readdirSync(group)) {
    const dir = join(group, name);
    const pkgPath = join(dir, 'package.json');
    if (!existsSync(pkgPath)) continue;
    const pkg = JSON.parse(readFileSync(pkgPath, 'utf8'));
    if (!pkg.scripts?.test) continue;
    const report = join(dir, '.vitest', 'results.json');
    if (!existsSync(report)) {
      failed += 1;
      problems.push(`${dir}: no test report (the test run crashed or did not start)`);
      continue;
    }
    const r = JSON.parse(readFileSync(report, 'utf8'));
    passed += r.numPassedTests ?? 0;
    failed += r.numFailedTests ?? 0;
    skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
    // A file that fails to load has no tests counted: count it as a failure.
    for (const file of r.testResults ?? []) {
      if (file.status === 'failed' && (file.assertionResults ?? []).length === 0) {
        failed += 1;
        problems.push(`${file.name}: ${String(file.message ?? 'failed to run').split('\n')[0]}`);
      }
    }
  }
}
for (const p of problems) console.log(`ci: ${p}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 ? 1 : 0);
