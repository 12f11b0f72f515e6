/**
 * Blocks of representation vectors as they arrive from layer taps: `[rows, dim]`, one sample per
 * row. The representation matrix of the GPM papers is the transpose (`dim x samples`, samples as
 * columns); every factoriser here takes the tap layout directly, so no caller transposes anything.
 */
import { type Matrix, tf } from '@ofm/tensor';

/** What a factoriser accepts as a block: a row-major matrix or a 2-D tensor, rows are samples. */
export type BlockInput = Matrix | tf.Tensor2D;

/** Float32 or float64 bytes per element. */
export function bytesPerElement(data: Float32Array | Float64Array): number {
  return data instanceof Float64Array ? 8 : 4;
}

/**
 * The block as a row-major matrix with `dim` columns. Tensors are read synchronously
 * (`dataSync`, a copy the caller does not own); matrices are returned as they are (no copy).
 * Throws a clear error, naming `who`, when the width is not `dim` or an entry is not finite.
 */
export function asBlock(block: BlockInput, dim: number, who: string): Matrix {
  let m: Matrix;
  if (block instanceof tf.Tensor) {
    if (block.rank !== 2) {
      throw new RangeError(`${who}: a block must be a 2-D tensor [rows, ${dim}], got shape [${block.shape}]`);
    }
    const data = block.dataSync();
    const values = data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
    m = { rows: block.shape[0], cols: block.shape[1], data: values };
  } else {
    m = block;
  }
  if (m.cols !== dim) {
    throw new RangeError(
      `${who}: block has ${m.cols} columns but this factoriser was built for dim ${dim}; ` +
        'blocks are [rows, dim] with one sample per row (a tap matrix as it comes)',
    );
  }
  if (m.data.length !== m.rows * m.cols) {
    throw new RangeError(`${who}: block data has ${m.data.length} elements, ${m.rows} x ${m.cols} needs ${m.rows * m.cols}`);
  }
  const d = m.data;
  for (let i = 0; i < d.length; i++) {
    if (!Number.isFinite(d[i]!)) {
      throw new RangeError(
        `${who}: block entry (row ${Math.floor(i / dim)}, col ${i % dim}) is ${d[i]}; ` +
          'representations must be finite (a NaN here usually means the model diverged)',
      );
    }
  }
  return m;
}

/** Σ x² over all entries, in float64. */
export function sumOfSquares(data: Float32Array | Float64Array): number {
  let s = 0;
  for (let i = 0; i < data.length; i++) s += data[i]! * data[i]!;
  return s;
}
