#!/usr/bin/env bash
# Real-photograph smoke: build a small evaluation set from the photographs in Debian packages
# (scripts/make-photo-set.mjs), learn two of its classes as two tasks with a tiny model, and check
# that the run evaluated both classes with finite metrics and kept the first class's numbers
# (per-task weights: no forgetting by construction). Runs after `pnpm build`.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
node scripts/make-photo-set.mjs --out "$work/photos" --classes gravel,grass --size 64 --train 16 --test-good 6 --test-defect 8
node apps/cli/dist/bin.js train --data "$work/photos" --tasks "gravel|grass" --config .ci/photo-smoke.json \
  --out "$work/model" --json --quiet > "$work/summary.json"
node -e '
const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const r = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8"));
const m = r.classMatrices.image_auroc;
const ok = m.length === 2 && Number.isFinite(m[0][0]) && m[1].length === 2 && m[1].every((v) => Number.isFinite(v)) && m[0][0] === m[1][0];
console.log(`photo smoke: image AUROC after task 1 ${JSON.stringify(m[0])}, after task 2 ${JSON.stringify(m[1])}`);
if (!ok) { console.error("photo smoke: FAILED (missing, non-finite or changed first-class metrics)"); process.exit(1); }
' "$work/summary.json" "$work/model/report/report.json"
echo "photo smoke: passed"
