/**
 * A small binary file format for one anomaly map, so tools in any language can hand maps to
 * `ofm metrics`:
 *
 * ```
 * offset 0   4 bytes   ASCII "OFMS" (magic)
 * offset 4   uint32    width,  little-endian
 * offset 8   uint32    height, little-endian
 * offset 12  float32[] width * height scores, little-endian, row-major (index = y * width + x)
 * ```
 *
 * The file is exactly 12 + 4 * width * height bytes. From Python/NumPy:
 * `open(p, 'wb').write(b'OFMS' + struct.pack('<II', w, h) + m.astype('<f4').tobytes())`.
 */
import { MetricsInputError } from './input';

const MAGIC = 'OFMS';
const HEADER_BYTES = 12;

/** A decoded score map. */
export interface ScoreMapData {
  data: Float32Array;
  width: number;
  height: number;
}

/** Encode a score map in the OFMS format (values are stored as float32). */
export function encodeScoreMap(map: { data: ArrayLike<number>; width: number; height: number }): Uint8Array {
  const { data, width, height } = map;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new MetricsInputError(`encodeScoreMap: width and height must be positive integers, got ${width} x ${height}`);
  }
  if (data.length !== width * height) {
    throw new MetricsInputError(`encodeScoreMap: ${data.length} values do not fill ${width} x ${height}`);
  }
  const bytes = new Uint8Array(HEADER_BYTES + 4 * data.length);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < 4; i++) bytes[i] = MAGIC.charCodeAt(i);
  view.setUint32(4, width, true);
  view.setUint32(8, height, true);
  for (let i = 0; i < data.length; i++) view.setFloat32(HEADER_BYTES + 4 * i, data[i]!, true);
  return bytes;
}

/**
 * Decode an OFMS score map. `source` (a file name) only improves the error messages.
 * @throws {MetricsInputError} for a wrong magic, a header that does not match the size, or NaN.
 */
export function decodeScoreMap(bytes: Uint8Array, source = 'score map'): ScoreMapData {
  const magic = String.fromCharCode(...bytes.subarray(0, 4));
  if (bytes.length < HEADER_BYTES || magic !== MAGIC) {
    throw new MetricsInputError(
      `${source}: not an OFMS score map (expected the 4 bytes "OFMS", then uint32 width and height, then float32 scores)`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const width = view.getUint32(4, true);
  const height = view.getUint32(8, true);
  const expected = HEADER_BYTES + 4 * width * height;
  if (width < 1 || height < 1 || bytes.length !== expected) {
    throw new MetricsInputError(
      `${source}: header says ${width} x ${height}, which needs ${expected} bytes, but the file has ${bytes.length}`,
    );
  }
  const data = new Float32Array(width * height);
  for (let i = 0; i < data.length; i++) {
    const v = view.getFloat32(HEADER_BYTES + 4 * i, true);
    if (Number.isNaN(v)) throw new MetricsInputError(`${source}: score ${i} is NaN`);
    data[i] = v;
  }
  return { data, width, height };
}
