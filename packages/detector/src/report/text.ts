/** A metric as report text (tables, figure labels): `digits` decimals, or '–' where it is undefined. */
export function fmt(v: number | null | undefined, digits = 3): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits);
}
