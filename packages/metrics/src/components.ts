/** Connected regions of a binary mask, 8-connectivity (a pixel touches its 8 neighbours). */

/**
 * Label the connected regions of `mask` (non-zero = foreground). Returns one label per pixel (0
 * for background, 1..count for the regions, numbered in raster order of their first pixel) and
 * the area of each region (`areas[k - 1]` for label k).
 */
export function labelComponents(
  mask: ArrayLike<number | boolean>,
  width: number,
  height: number,
): { labels: Int32Array; count: number; areas: number[] } {
  const n = width * height;
  const labels = new Int32Array(n);
  const stack = new Int32Array(n);
  const areas: number[] = [];
  let count = 0;
  for (let start = 0; start < n; start++) {
    if (labels[start] !== 0 || !mask[start]) continue;
    const label = ++count;
    let area = 0;
    let top = 0;
    stack[top++] = start;
    labels[start] = label;
    while (top > 0) {
      const p = stack[--top]!;
      area++;
      const y = (p / width) | 0;
      const x = p - y * width;
      const y0 = y > 0 ? y - 1 : y;
      const y1 = y < height - 1 ? y + 1 : y;
      const x0 = x > 0 ? x - 1 : x;
      const x1 = x < width - 1 ? x + 1 : x;
      for (let yy = y0; yy <= y1; yy++) {
        for (let xx = x0; xx <= x1; xx++) {
          const q = yy * width + xx;
          if (labels[q] === 0 && mask[q]) {
            labels[q] = label;
            stack[top++] = q;
          }
        }
      }
    }
    areas.push(area);
  }
  return { labels, count, areas };
}
