/**
 * Continual-learning settings: which classes each task learns, in order. The paper's settings
 * are data here; user settings are parsed from strings such as `"bottle,cable|screw"` (`|`
 * separates tasks, `,` classes). After task t, the test set is every class learned so far.
 */
import { ConfigError } from '@ofm/errors';
import { DatasetError } from './errors';

/** The 15 MVTec AD classes in alphabetical order (the order of the paper's settings). */
export const MVTEC_CLASSES: readonly string[] = [
  'bottle',
  'cable',
  'capsule',
  'carpet',
  'grid',
  'hazelnut',
  'leather',
  'metal_nut',
  'pill',
  'screw',
  'tile',
  'toothbrush',
  'transistor',
  'wood',
  'zipper',
];

/** The 12 VisA classes in alphabetical order. */
export const VISA_CLASSES: readonly string[] = [
  'candle',
  'capsules',
  'cashew',
  'chewinggum',
  'fryum',
  'macaroni1',
  'macaroni2',
  'pcb1',
  'pcb2',
  'pcb3',
  'pcb4',
  'pipe_fryum',
];

/** A sequence of tasks, each a list of class names. */
export type Tasks = string[][];

/** A named continual setting. */
export interface ContinualSetting {
  name: string;
  dataset: 'mvtec' | 'visa';
  description: string;
  tasks: Tasks;
}

/** Names of the paper's settings. */
export type ContinualSettingName =
  | 'mvtec-14-1'
  | 'mvtec-10-5'
  | 'mvtec-3x5'
  | 'mvtec-10-1x5'
  | 'visa-11-1'
  | 'visa-8-4'
  | 'visa-8-1x4';

const singles = (classes: readonly string[]): Tasks => classes.map((c) => [c]);

function setting(name: ContinualSettingName, dataset: 'mvtec' | 'visa', description: string, tasks: Tasks): ContinualSetting {
  return { name, dataset, description, tasks };
}

const M = MVTEC_CLASSES;
const V = VISA_CLASSES;

/**
 * The continual settings of One-for-More (CVPR 2025), keyed by name. MVTec classes in
 * alphabetical order; VisA 8-x settings learn candle..pcb1 first, then pcb2, pcb3, pcb4,
 * pipe_fryum; VisA 11-1 learns every class but pipe_fryum first.
 */
export const continualSettings: Readonly<Record<ContinualSettingName, ContinualSetting>> = {
  'mvtec-14-1': setting('mvtec-14-1', 'mvtec', '14 classes, then zipper', [M.slice(0, 14), M.slice(14)]),
  'mvtec-10-5': setting('mvtec-10-5', 'mvtec', '10 classes (bottle..screw), then 5 (tile..zipper)', [M.slice(0, 10), M.slice(10)]),
  'mvtec-3x5': setting('mvtec-3x5', 'mvtec', 'three tasks of five classes', [M.slice(0, 5), M.slice(5, 10), M.slice(10)]),
  'mvtec-10-1x5': setting('mvtec-10-1x5', 'mvtec', '10 classes, then 5 tasks of one class', [M.slice(0, 10), ...singles(M.slice(10))]),
  'visa-11-1': setting('visa-11-1', 'visa', '11 classes (candle..pcb4), then pipe_fryum', [V.slice(0, 11), V.slice(11)]),
  'visa-8-4': setting('visa-8-4', 'visa', '8 classes (candle..pcb1), then pcb2, pcb3, pcb4, pipe_fryum', [V.slice(0, 8), V.slice(8)]),
  'visa-8-1x4': setting('visa-8-1x4', 'visa', '8 classes, then pcb2, pcb3, pcb4, pipe_fryum one by one', [V.slice(0, 8), ...singles(V.slice(8))]),
};

/** True when `name` is one of {@link continualSettings}. */
export function isContinualSettingName(name: string): name is ContinualSettingName {
  return Object.hasOwn(continualSettings, name);
}

/**
 * Parse a task string: `|` separates tasks, `,` separates the classes of a task; spaces around
 * names are ignored. `"bottle,cable|screw"` is `[["bottle","cable"],["screw"]]`.
 * @throws {ConfigError} for an empty task or class name, or a class listed twice.
 */
export function parseTasks(spec: string): Tasks {
  const tasks = spec.split('|').map((task, t) =>
    task.split(',').map((name, c) => {
      const trimmed = name.trim();
      if (!trimmed) {
        throw new ConfigError(
          `tasks "${spec}": task ${t + 1} has an empty class name at position ${c + 1}; write classes as a,b|c`,
        );
      }
      return trimmed;
    }),
  );
  checkUnique(tasks, `tasks "${spec}"`);
  return tasks;
}

/** One task per class, in the given order. */
export function oneClassPerTask(classes: readonly string[]): Tasks {
  const tasks = singles(classes);
  checkUnique(tasks, 'oneClassPerTask');
  return tasks;
}

/** A task sequence back to its string form (`a,b|c`). */
export function formatTasks(tasks: Tasks): string {
  return tasks.map((t) => t.join(',')).join('|');
}

/**
 * Resolve a setting name (`mvtec-10-5`, ...) or a task string (`a,b|c`) to tasks, and, when
 * `available` is given, check every class against it.
 */
export function resolveTasks(spec: string, available?: { classes: readonly string[]; root?: string }): Tasks {
  const tasks = isContinualSettingName(spec) ? continualSettings[spec].tasks.map((t) => [...t]) : parseTasks(spec);
  if (available) validateTasks(tasks, available.classes, available.root);
  return tasks;
}

/**
 * Check that every class of `tasks` exists in the dataset.
 * @throws {DatasetError} naming the unknown classes and the available ones.
 */
export function validateTasks(tasks: Tasks, available: readonly string[], root = '<dataset>'): void {
  const unknown = tasks.flat().filter((c) => !available.includes(c));
  if (unknown.length > 0) {
    throw new DatasetError(
      `unknown class${unknown.length > 1 ? 'es' : ''} ${unknown.join(', ')} in the task list; this dataset has: ${available.join(', ')}`,
      root,
    );
  }
}

/** Classes learned up to and including task `t` (the cumulative test set after task t). */
export function classesSeen(tasks: Tasks, t: number): string[] {
  return tasks.slice(0, t + 1).flat();
}

function checkUnique(tasks: Tasks, where: string): void {
  const seen = new Set<string>();
  for (const c of tasks.flat()) {
    if (seen.has(c)) throw new ConfigError(`${where}: class "${c}" appears twice; each class belongs to one task`);
    seen.add(c);
  }
}
