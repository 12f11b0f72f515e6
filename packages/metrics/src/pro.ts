/**
 * AUPRO, the per-region overlap metric of MVTec AD (Bergmann et al., "The MVTec Anomaly Detection
 * Dataset", IJCV 2021). At a threshold t:
 *
 * - the false-positive rate is the share of all normal pixels (mask 0, in every image) scoring
 *   at or above t;
 * - the per-region overlap (PRO) is the mean, over every connected defect region (8-connectivity)
 *   of every image, of the share of the region's pixels scoring at or above t.
 *
 * AUPRO is the area under PRO(FPR) from FPR 0 to a limit (0.3 by convention), divided by that
 * limit, so a perfect map scores 1. The curve is swept exactly, one point per distinct score
 * (sort-based, like the reference evaluation code), and integrated with the trapezoidal rule,
 * interpolating linearly at the limit.
 */
import { labelComponents } from './components';
import { type MaskMap, MetricsInputError, type ScoreMap, isMap2D, mapData, mapShape } from './input';
import { badScore } from './ranking';
import { sortAscending, sortAscendingWithPayload, withExactStorage } from './sort';

/** Options of {@link aupro}. */
export interface AuproOptions {
  /** Upper FPR limit of the integration; default 0.3. */
  fprLimit?: number;
  /** Width of every map given as a flat array (maps given as `{data, width, height}` carry their own). */
  width?: number;
  /** Height of every map given as a flat array. */
  height?: number;
}

/** Points of the PRO curve up to the FPR limit (the last point interpolated at the limit). */
export interface ProCurve {
  fpr: Float64Array;
  pro: Float64Array;
  /** Number of connected defect regions over all masks. */
  regions: number;
}

/**
 * AUPRO of per-image anomaly maps against ground-truth masks (see the module notes). Returns NaN
 * when the masks have no defect pixel or no normal pixel.
 */
export function aupro(maps: ReadonlyArray<ScoreMap>, masks: ReadonlyArray<MaskMap>, options: AuproOptions = {}): number {
  const limit = options.fprLimit ?? 0.3;
  const curve = proCurve(maps, masks, options);
  if (curve.regions === 0 || curve.fpr.length < 2) return Number.NaN;
  let area = 0;
  for (let k = 1; k < curve.fpr.length; k++) {
    area += ((curve.fpr[k]! - curve.fpr[k - 1]!) * (curve.pro[k]! + curve.pro[k - 1]!)) / 2;
  }
  return area / limit;
}

/** The PRO curve from FPR 0 up to `fprLimit` (see {@link aupro}). */
export function proCurve(
  maps: ReadonlyArray<ScoreMap>,
  masks: ReadonlyArray<MaskMap>,
  options: AuproOptions = {},
): ProCurve {
  const limit = options.fprLimit ?? 0.3;
  if (!(limit > 0 && limit <= 1)) {
    throw new MetricsInputError(`aupro: fprLimit must be in (0, 1], got ${limit}`);
  }
  if (maps.length !== masks.length) {
    throw new MetricsInputError(`aupro: ${maps.length} anomaly maps but ${masks.length} masks`);
  }

  // Pass 1: shapes, connected regions and their areas; count normal and defect pixels.
  const regionLabels: Int32Array[] = [];
  const regionAreas: number[] = [];
  let normalCount = 0;
  let defectCount = 0;
  for (let m = 0; m < maps.length; m++) {
    const mapShapeM = mapShape(maps[m]!, m, 'aupro (anomaly map)', options);
    const maskLength = mapData(masks[m]!).length;
    const maskShapeM = isMap2D(masks[m]!) ? mapShape(masks[m]!, m, 'aupro (mask)', {}) : null;
    if (
      maskShapeM
        ? maskShapeM.width !== mapShapeM.width || maskShapeM.height !== mapShapeM.height
        : maskLength !== mapShapeM.width * mapShapeM.height
    ) {
      const maskSize = maskShapeM ? `is ${maskShapeM.width} x ${maskShapeM.height}` : `has ${maskLength} values`;
      throw new MetricsInputError(
        `aupro: anomaly map ${m} is ${mapShapeM.width} x ${mapShapeM.height} but its mask ${maskSize}`,
      );
    }
    const { labels, count, areas } = labelComponents(mapData(masks[m]!), mapShapeM.width, mapShapeM.height);
    // Offset this image's labels so every region in the set has its own id.
    const offset = regionAreas.length;
    let defects = 0;
    if (offset > 0) {
      for (let i = 0; i < labels.length; i++) if (labels[i] !== 0) labels[i] += offset;
    }
    for (const a of areas) {
      regionAreas.push(a);
      defects += a;
    }
    regionLabels.push(labels);
    defectCount += defects;
    normalCount += labels.length - defects;
  }
  const regions = regionAreas.length;
  if (regions === 0 || normalCount === 0) {
    return { fpr: Float64Array.of(0), pro: Float64Array.of(0), regions };
  }

  // Pass 2: gather normal scores, and defect scores with their region ids; sort both.
  const defectRegion = new Uint32Array(defectCount);
  const fill = ([normal, defect]: Array<Float32Array | Float64Array>): boolean => {
    let n = 0;
    let d = 0;
    let exact = true;
    for (let m = 0; m < maps.length; m++) {
      const scores = mapData(maps[m]!);
      const labels = regionLabels[m]!;
      for (let i = 0; i < labels.length; i++) {
        let v = scores[i]!;
        if (typeof v !== 'number' || Number.isNaN(v)) throw badScore('aupro', v, i, m, maps.length);
        if (v === 0) v = 0;
        const r = labels[i]!;
        if (r === 0) {
          normal![n] = v;
          exact = exact && normal![n] === v;
          n++;
        } else {
          defect![d] = v;
          exact = exact && defect![d] === v;
          defectRegion[d++] = r - 1;
        }
      }
    }
    return exact;
  };
  const [normalSorted, defectSorted] = withExactStorage([normalCount, defectCount], fill, ([normal, defect]) => {
    sortAscending(normal!);
    sortAscendingWithPayload(defect!, defectRegion);
    return [normal!, defect!];
  });

  // Each defect pixel adds 1 / (regions * its region's area) to PRO. Regions are also counted as
  // they fill up, so that PRO is exactly 1 once every region is covered (no rounding residue).
  const weight = new Float64Array(regions);
  for (let r = 0; r < regions; r++) weight[r] = 1 / (regions * regionAreas[r]!);
  const covered = new Uint32Array(regions);
  let fullRegions = 0;

  const fpr: number[] = [0];
  const pro: number[] = [0];
  let i = normalSorted!.length - 1;
  let j = defectSorted!.length - 1;
  let fp = 0;
  let overlap = 0;
  while (i >= 0 || j >= 0) {
    const t = i < 0 ? defectSorted![j]! : j < 0 ? normalSorted![i]! : Math.max(normalSorted![i]!, defectSorted![j]!);
    while (i >= 0 && normalSorted![i] === t) {
      fp++;
      i--;
    }
    while (j >= 0 && defectSorted![j] === t) {
      const r = defectRegion[j]!;
      overlap += weight[r]!;
      if (++covered[r] === regionAreas[r]) fullRegions++;
      j--;
    }
    const x = fp / normalCount;
    const y = fullRegions === regions ? 1 : Math.min(overlap, 1);
    if (x > limit) {
      // Close the curve at the limit by linear interpolation on the segment that crosses it.
      const x0 = fpr[fpr.length - 1]!;
      const y0 = pro[pro.length - 1]!;
      fpr.push(limit);
      pro.push(y0 + ((y - y0) * (limit - x0)) / (x - x0));
      break;
    }
    fpr.push(x);
    pro.push(y);
  }
  return { fpr: Float64Array.from(fpr), pro: Float64Array.from(pro), regions };
}
