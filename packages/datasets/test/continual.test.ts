import { describe, expect, it } from 'vitest';
import {
  DatasetError,
  MVTEC_CLASSES,
  VISA_CLASSES,
  classesSeen,
  continualSettings,
  formatTasks,
  oneClassPerTask,
  parseTasks,
  resolveTasks,
  validateTasks,
} from '../src/index';

describe('continual settings of the paper', () => {
  it('lists the MVTec and VisA classes in alphabetical order', () => {
    expect(MVTEC_CLASSES).toHaveLength(15);
    expect([...MVTEC_CLASSES].sort()).toEqual(MVTEC_CLASSES);
    expect(VISA_CLASSES).toHaveLength(12);
    expect([...VISA_CLASSES].sort()).toEqual(VISA_CLASSES);
  });

  it('has the task splits of each setting', () => {
    const sizes = Object.fromEntries(Object.entries(continualSettings).map(([k, s]) => [k, s.tasks.map((t) => t.length).join('-')]));
    expect(sizes).toEqual({
      'mvtec-14-1': '14-1',
      'mvtec-10-5': '10-5',
      'mvtec-3x5': '5-5-5',
      'mvtec-10-1x5': '10-1-1-1-1-1',
      'visa-11-1': '11-1',
      'visa-8-4': '8-4',
      'visa-8-1x4': '8-1-1-1-1',
    });
    for (const s of Object.values(continualSettings)) {
      expect(s.tasks.flat()).toEqual(s.dataset === 'mvtec' ? MVTEC_CLASSES : VISA_CLASSES);
    }
    expect(continualSettings['mvtec-14-1'].tasks[1]).toEqual(['zipper']);
    expect(continualSettings['mvtec-10-5'].tasks[1]).toEqual(['tile', 'toothbrush', 'transistor', 'wood', 'zipper']);
    expect(continualSettings['mvtec-3x5'].tasks[1]).toEqual(['hazelnut', 'leather', 'metal_nut', 'pill', 'screw']);
    expect(continualSettings['visa-11-1'].tasks[0]).toContain('pcb4');
    expect(continualSettings['visa-11-1'].tasks[1]).toEqual(['pipe_fryum']);
    expect(continualSettings['visa-8-1x4'].tasks.slice(1)).toEqual([['pcb2'], ['pcb3'], ['pcb4'], ['pipe_fryum']]);
  });
});

describe('user settings', () => {
  it('parses "a,b|c" with spaces, and formats back', () => {
    const tasks = parseTasks(' bottle, cable | screw ');
    expect(tasks).toEqual([['bottle', 'cable'], ['screw']]);
    expect(formatTasks(tasks)).toBe('bottle,cable|screw');
  });

  it('rejects empty names and duplicates', () => {
    expect(() => parseTasks('bottle,,cable')).toThrow(/task 1 has an empty class name at position 2/);
    expect(() => parseTasks('bottle|')).toThrow(/task 2 has an empty class name/);
    expect(() => parseTasks('bottle|bottle')).toThrow(/class "bottle" appears twice/);
    expect(() => oneClassPerTask(['a', 'a'])).toThrow(/appears twice/);
  });

  it('gives one task per class, and the cumulative classes seen', () => {
    const tasks = oneClassPerTask(['washer', 'chip', 'tablet']);
    expect(tasks).toEqual([['washer'], ['chip'], ['tablet']]);
    expect(classesSeen(tasks, 1)).toEqual(['washer', 'chip']);
  });

  it('resolves setting names and strings, validating against a dataset', () => {
    expect(resolveTasks('mvtec-10-5')[0]).toHaveLength(10);
    expect(resolveTasks('weave|chip', { classes: ['weave', 'chip'] })).toEqual([['weave'], ['chip']]);
    const err = (() => {
      try {
        validateTasks([['weave', 'bottle'], ['cable']], ['weave', 'chip'], '/data/synth');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as Error).message).toBe('/data/synth: unknown classes bottle, cable in the task list; this dataset has: weave, chip');
  });
});
