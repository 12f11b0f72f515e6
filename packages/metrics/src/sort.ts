/**
 * Linear-time sorting of float32 data (LSD radix sort over order-preserving integer keys), so
 * that metrics over millions of pixels sort in a fraction of a second. Data that float32 cannot
 * hold exactly falls back to the native float64 sort: results never lose precision.
 */

const SIGN = 0x80000000;
const DIGIT_BITS = 11;
const BUCKETS = 1 << DIGIT_BITS;
const DIGIT_MASK = BUCKETS - 1;
const PASSES = 3; // 11 + 11 + 10 bits

/** Below this length the native sort is as fast and allocation-free. */
const RADIX_MIN_LENGTH = 2048;

/** Map float32 bit patterns to unsigned keys whose integer order is the float order. */
function toKeys(bits: Uint32Array): void {
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i]!;
    bits[i] = (x & SIGN ? ~x : x | SIGN) >>> 0;
  }
}

function fromKeys(keys: Uint32Array): void {
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    keys[i] = (k & SIGN ? k & ~SIGN : ~k) >>> 0;
  }
}

/**
 * Sort keys ascending, carrying an optional payload along. Returns the arrays that hold the
 * result (either the inputs or the scratch buffers).
 */
function radixSortKeys(
  keys: Uint32Array,
  payload: Uint32Array | null,
): { keys: Uint32Array; payload: Uint32Array | null } {
  const n = keys.length;
  let src: Uint32Array = keys;
  let dst: Uint32Array = new Uint32Array(n);
  let srcPay: Uint32Array | null = payload;
  let dstPay: Uint32Array | null = payload ? new Uint32Array(n) : null;
  const counts = new Uint32Array(BUCKETS);
  for (let pass = 0; pass < PASSES; pass++) {
    const shift = pass * DIGIT_BITS;
    counts.fill(0);
    for (let i = 0; i < n; i++) counts[(src[i]! >>> shift) & DIGIT_MASK]!++;
    // A digit shared by every key leaves the order unchanged: skip the pass.
    if (counts[(src[0]! >>> shift) & DIGIT_MASK] === n) continue;
    let sum = 0;
    for (let b = 0; b < BUCKETS; b++) {
      const c = counts[b]!;
      counts[b] = sum;
      sum += c;
    }
    if (srcPay && dstPay) {
      for (let i = 0; i < n; i++) {
        const k = src[i]!;
        const at = counts[(k >>> shift) & DIGIT_MASK]!++;
        dst[at] = k;
        dstPay[at] = srcPay[i]!;
      }
      const t = srcPay;
      srcPay = dstPay;
      dstPay = t;
    } else {
      for (let i = 0; i < n; i++) {
        const k = src[i]!;
        dst[counts[(k >>> shift) & DIGIT_MASK]!++] = k;
      }
    }
    const t = src;
    src = dst;
    dst = t;
  }
  return { keys: src, payload: srcPay };
}

/** Sort a Float32Array ascending in place (NaN-free input). */
export function sortFloat32(values: Float32Array): Float32Array {
  if (values.length < RADIX_MIN_LENGTH) return values.sort();
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  toKeys(bits);
  const sorted = radixSortKeys(bits, null).keys;
  fromKeys(sorted);
  if (sorted !== bits) bits.set(sorted);
  return values;
}

/**
 * Sort a Float32Array ascending in place and permute `payload` the same way (NaN-free input).
 * Equal values keep their input order.
 */
export function sortFloat32WithPayload(values: Float32Array, payload: Uint32Array): void {
  const n = values.length;
  if (n < RADIX_MIN_LENGTH) {
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    order.sort((a, b) => values[a]! - values[b]! || a - b);
    const v = Float32Array.from(order, (i) => values[i]!);
    const p = Uint32Array.from(order, (i) => payload[i]!);
    values.set(v);
    payload.set(p);
    return;
  }
  const bits = new Uint32Array(values.buffer, values.byteOffset, n);
  toKeys(bits);
  const sorted = radixSortKeys(bits, payload);
  fromKeys(sorted.keys);
  if (sorted.keys !== bits) bits.set(sorted.keys);
  if (sorted.payload !== payload) payload.set(sorted.payload!);
}

/** Sort a Float64Array ascending in place, carrying a payload (comparison sort, stable). */
export function sortFloat64WithPayload(values: Float64Array, payload: Uint32Array): void {
  const n = values.length;
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => values[a]! - values[b]! || a - b);
  const v = Float64Array.from(order, (i) => values[i]!);
  const p = Uint32Array.from(order, (i) => payload[i]!);
  values.set(v);
  payload.set(p);
}

/** Sort ascending in place: radix sort for float32, the native sort for float64. */
export function sortAscending<T extends Float32Array | Float64Array>(values: T): T {
  if (values instanceof Float32Array) sortFloat32(values);
  else values.sort();
  return values;
}

/** Sort ascending in place, permuting `payload` the same way. */
export function sortAscendingWithPayload(values: Float32Array | Float64Array, payload: Uint32Array): void {
  if (values instanceof Float32Array) sortFloat32WithPayload(values, payload);
  else sortFloat64WithPayload(values, payload);
}

/**
 * Allocate float32 storage and run `fill`; if `fill` reports a value that float32 cannot hold
 * exactly, run it again on float64 storage. Model outputs are float32, so the fallback is rare,
 * and no input ever loses precision.
 */
export function withExactStorage<T>(
  lengths: readonly number[],
  fill: (arrays: Array<Float32Array | Float64Array>) => boolean,
  done: (arrays: Array<Float32Array | Float64Array>) => T,
): T {
  const f32 = lengths.map((n) => new Float32Array(n));
  if (fill(f32)) return done(f32);
  const f64 = lengths.map((n) => new Float64Array(n));
  fill(f64);
  return done(f64);
}
