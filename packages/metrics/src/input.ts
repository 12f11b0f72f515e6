/**
 * Input shapes accepted by the metrics, and their validation. Everything here works on plain
 * arrays and typed arrays; nothing depends on tensors.
 */

/** One value per sample: a plain array or any typed array. */
export type Scores = ArrayLike<number>;

/**
 * Labels: 0 (normal) and anything non-zero (anomalous, e.g. 1 or 255), or booleans. Masks stored
 * as 0/255 bytes can be passed as they are.
 */
export type Labels = ArrayLike<number | boolean>;

/** A 2-D map with its shape, row-major (index = y * width + x). */
export interface Map2D<T extends number | boolean = number> {
  data: ArrayLike<T>;
  width: number;
  height: number;
}

/**
 * A per-pixel score map: a flat row-major array (its shape then comes from the `width`/`height`
 * options, or it must be square) or a {@link Map2D}.
 */
export type ScoreMap = ArrayLike<number> | Map2D<number>;

/** A per-pixel ground-truth mask, same conventions as {@link Labels}. */
export type MaskMap = ArrayLike<number | boolean> | Map2D<number | boolean>;

/** Error for inputs the metrics cannot be computed from (wrong lengths, NaN scores, bad shapes). */
export class MetricsInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MetricsInputError';
  }
}

export function isMap2D<T extends number | boolean>(value: ArrayLike<T> | Map2D<T>): value is Map2D<T> {
  return typeof value === 'object' && value !== null && 'data' in value && 'width' in value;
}

/** The data of a map, whichever form it was given in. */
export function mapData<T extends number | boolean>(value: ArrayLike<T> | Map2D<T>): ArrayLike<T> {
  return isMap2D(value) ? value.data : value;
}

/** True when `value` is a list of per-image arrays rather than one flat array of numbers. */
export function isNested(value: ArrayLike<unknown>): value is ReadonlyArray<ArrayLike<number>> {
  if (value.length === 0) return false;
  const first = (value as ArrayLike<unknown>)[0];
  return typeof first === 'object' && first !== null;
}

/** Labels as 0/1, rejecting NaN and non-numbers. */
export function labelBit(value: number | boolean, where: string, index: number): 0 | 1 {
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new MetricsInputError(`${where}: label at index ${index} is ${String(value)}; expected 0/1 (or 0/255, or a boolean)`);
  }
  return value !== 0 ? 1 : 0;
}

/** The (width, height) of map `index`, from the map itself, the options, or a square length. */
export function mapShape(
  map: ScoreMap | MaskMap,
  index: number,
  where: string,
  shape: { width?: number; height?: number },
): { width: number; height: number } {
  const length = mapData(map).length;
  let width: number;
  let height: number;
  if (isMap2D(map)) {
    width = map.width;
    height = map.height;
  } else if (shape.width !== undefined || shape.height !== undefined) {
    width = shape.width ?? length / shape.height!;
    height = shape.height ?? length / shape.width!;
  } else {
    width = height = Math.round(Math.sqrt(length));
    if (width * height !== length) {
      throw new MetricsInputError(
        `${where}: map ${index} has ${length} values, which is not a square; give its width and height`,
      );
    }
  }
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width * height !== length) {
    throw new MetricsInputError(`${where}: map ${index} has ${length} values, which does not match ${width} x ${height}`);
  }
  return { width, height };
}
