/**
 * Which layers gradient projection protects, and the energy thresholds it uses for each layer
 * group and task.
 */
import type { ParamInfo } from '@ofm/tensor';

/**
 * Protected layers:
 * - a list of layer names (`unet.input.0.conv`; a parameter name such as `unet.input.0.conv.weight`
 *   is accepted too),
 * - a RegExp tested against the layer name,
 * - or a predicate on the weight's `ParamInfo` (@ofm/tensor).
 * Only conv and dense weights can be protected (they are the layers that report taps).
 */
export type LayerSelector = readonly string[] | RegExp | ((info: ParamInfo) => boolean);

/** What a threshold is chosen for. */
export interface ThresholdQuery {
  /** Layer name (the weight's name without `.weight`). */
  layer: string;
  kind: 'conv' | 'dense';
  /** The layer's input dimension (`kh·kw·in` for a conv). */
  inDim: number;
  /** 0-based index of the task being collected or consolidated. */
  task: number;
}

/** A threshold in (0, 1], fixed or chosen per layer and task. */
export type ThresholdSpec = number | ((query: ThresholdQuery) => number);

/** One rule of {@link thresholdRules}. */
export interface ThresholdRule {
  /**
   * Layers the rule applies to (default: all): a name prefix on dot boundaries (`'unet.input'`
   * matches `unet.input.0.conv` but not `unet.inputs`), a list of prefixes, a RegExp or a predicate.
   */
  layers?: string | readonly string[] | RegExp | ((layer: string) => boolean);
  /** Tasks the rule applies to (default: all): a list of 0-based task indices or a predicate. */
  tasks?: readonly number[] | ((task: number) => boolean);
  value: number;
}

/**
 * A {@link ThresholdSpec} from rules tried in order (the first that matches wins) and a fallback:
 * thresholds per layer group and per task.
 *
 * ```ts
 * thresholdRules([
 *   { layers: 'unet.input.0', value: 0.9 },          // the narrow input conv fills up fast
 *   { tasks: [0], value: 0.97 },                       // first task
 * ], 0.99)
 * ```
 */
export function thresholdRules(rules: readonly ThresholdRule[], fallback: number): (query: ThresholdQuery) => number {
  checkThreshold(fallback, 'thresholdRules fallback');
  rules.forEach((r, i) => checkThreshold(r.value, `thresholdRules rule ${i}`));
  return (q) => {
    for (const rule of rules) {
      if (rule.layers !== undefined && !layerMatches(rule.layers, q.layer)) continue;
      if (rule.tasks !== undefined && !(typeof rule.tasks === 'function' ? rule.tasks(q.task) : rule.tasks.includes(q.task))) continue;
      return rule.value;
    }
    return fallback;
  };
}

function layerMatches(pattern: NonNullable<ThresholdRule['layers']>, layer: string): boolean {
  if (typeof pattern === 'function') return pattern(layer);
  if (pattern instanceof RegExp) return pattern.test(layer);
  const prefixes = typeof pattern === 'string' ? [pattern] : pattern;
  return prefixes.some((p) => layer === p || layer.startsWith(`${p}.`));
}

/** The threshold for `query`, validated. `what` names the option in errors. */
export function resolveThreshold(spec: ThresholdSpec, query: ThresholdQuery, what: string): number {
  const value = typeof spec === 'number' ? spec : spec(query);
  checkThreshold(value, `${what} for layer '${query.layer}' (task ${query.task})`);
  return value;
}

/** Throws, naming `what`, unless `value` is an energy threshold in (0, 1]. */
export function checkThreshold(value: number, what: string): void {
  if (!(typeof value === 'number' && value > 0 && value <= 1)) {
    throw new RangeError(`${what}: an energy threshold must be a number in (0, 1], got ${String(value)}`);
  }
}

/** Whether the weight described by `info` is protected under `selector` (default: every conv/dense weight). */
export function isSelected(selector: LayerSelector | undefined, info: ParamInfo): boolean {
  if (info.role !== 'weight' || (info.layerKind !== 'conv' && info.layerKind !== 'dense')) return false;
  if (selector === undefined) return true;
  if (typeof selector === 'function') return selector(info);
  if (selector instanceof RegExp) return selector.test(info.layer);
  return (selector as readonly string[]).some((s) => s === info.layer || s === info.name);
}
