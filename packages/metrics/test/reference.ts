/**
 * Straightforward reference implementations for the cross-checks: quadratic or per-threshold
 * full passes, written independently of the package's sort-and-sweep code.
 */

/** AUROC by the Mann-Whitney pair count: P(s+ > s-) + P(s+ = s-) / 2. */
export function bruteAuroc(scores: number[], labels: number[]): number {
  let wins = 0;
  let pairs = 0;
  for (let a = 0; a < scores.length; a++) {
    if (!labels[a]) continue;
    for (let b = 0; b < scores.length; b++) {
      if (labels[b]) continue;
      pairs++;
      if (scores[a]! > scores[b]!) wins += 1;
      else if (scores[a] === scores[b]) wins += 0.5;
    }
  }
  return wins / pairs;
}

/** Distinct thresholds, highest first. */
function thresholds(scores: number[]): number[] {
  return [...new Set(scores)].sort((a, b) => b - a);
}

/** AP and F1-max by a full pass per distinct threshold. */
export function bruteApF1(scores: number[], labels: number[]): { ap: number; f1: number } {
  const P = labels.filter((l) => l).length;
  let ap = 0;
  let f1 = 0;
  let prevRecall = 0;
  for (const t of thresholds(scores)) {
    let tp = 0;
    let fp = 0;
    for (let i = 0; i < scores.length; i++) {
      if (scores[i]! >= t) {
        if (labels[i]) tp++;
        else fp++;
      }
    }
    const precision = tp / (tp + fp);
    const recall = tp / P;
    ap += (recall - prevRecall) * precision;
    prevRecall = recall;
    f1 = Math.max(f1, (2 * precision * recall) / (precision + recall || 1));
  }
  return { ap, f1 };
}

/** Connected regions by union-find over the 8 neighbours (a different algorithm from the package's flood fill). */
function regionsOf(mask: number[], width: number, height: number): Map<number, number[]> {
  const parent = mask.map((_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) i = parent[i]!;
    return i;
  };
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = y * width + x;
      if (!mask[p]) continue;
      for (const [dx, dy] of [[1, 0], [0, 1], [1, 1], [-1, 1]] as const) {
        const xx = x + dx;
        const yy = y + dy;
        if (xx < 0 || xx >= width || yy >= height) continue;
        const q = yy * width + xx;
        if (mask[q]) parent[find(p)] = find(q);
      }
    }
  }
  const regions = new Map<number, number[]>();
  mask.forEach((m, i) => {
    if (!m) return;
    const r = find(i);
    if (!regions.has(r)) regions.set(r, []);
    regions.get(r)!.push(i);
  });
  return regions;
}

/** AUPRO by a full pass per distinct threshold, then the MVTec trapezoid with interpolation at the limit. */
export function bruteAupro(maps: number[][], masks: number[][], width: number, height: number, limit = 0.3): number {
  const regions: { image: number; pixels: number[] }[] = [];
  masks.forEach((mask, image) => {
    for (const pixels of regionsOf(mask, width, height).values()) regions.push({ image, pixels });
  });
  const normals: number[] = [];
  maps.forEach((map, m) => map.forEach((v, i) => masks[m]![i] || normals.push(v)));
  const xs = [0];
  const ys = [0];
  for (const t of thresholds(maps.flat())) {
    xs.push(normals.filter((v) => v >= t).length / normals.length);
    let pro = 0;
    for (const r of regions) pro += r.pixels.filter((i) => maps[r.image]![i]! >= t).length / r.pixels.length;
    ys.push(pro / regions.length);
  }
  let area = 0;
  for (let k = 1; k < xs.length; k++) {
    const x0 = xs[k - 1]!;
    const x1 = xs[k]!;
    if (x0 >= limit) break;
    if (x1 <= limit) area += ((x1 - x0) * (ys[k]! + ys[k - 1]!)) / 2;
    else {
      const yAtLimit = ys[k - 1]! + ((ys[k]! - ys[k - 1]!) * (limit - x0)) / (x1 - x0);
      area += ((limit - x0) * (yAtLimit + ys[k - 1]!)) / 2;
    }
  }
  return area / limit;
}

/** Small seeded generator for test data (mulberry32). */
export function testRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
