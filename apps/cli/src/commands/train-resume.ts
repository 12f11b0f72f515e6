import { resolve } from 'node:path';
import type { DataOptions } from '../data';
import { ofmCommand, shellQuote } from '../invocation';

/** The `ofm train` options a continuation must repeat. */
export interface ResumableTrainOptions extends DataOptions {
  setting?: string;
  tasks?: string;
  steps?: string;
  projection: boolean;
  eval: boolean;
  keepTasks?: boolean;
  backend?: string;
}

/**
 * The command that continues an interrupted `ofm train`, ready to paste in any directory (absolute
 * paths, quoted for the shell): the checkpoint to continue (`--out` too when the run wrote
 * elsewhere and has not saved there yet), the same data and tasks, and the options that must not
 * change between the two runs.
 */
export function resumeCommand(o: ResumableTrainOptions, checkpoint: string, out: string): string {
  const args = ['train', '--resume', resolve(checkpoint)];
  if (resolve(checkpoint) !== resolve(out)) args.push('--out', resolve(out));
  args.push('--data', resolve(o.data));
  if (o.format !== 'mvtec') args.push('--format', o.format);
  if (o.normalDir) args.push('--normal-dir', resolve(o.normalDir));
  if (o.abnormalDir) args.push('--abnormal-dir', resolve(o.abnormalDir));
  if (o.maskDir) args.push('--mask-dir', resolve(o.maskDir));
  if (o.setting) args.push('--setting', o.setting);
  if (o.tasks) args.push('--tasks', o.tasks);
  if (o.steps !== undefined) args.push('--steps', o.steps);
  if (!o.projection) args.push('--no-projection');
  if (!o.eval) args.push('--no-eval');
  if (o.keepTasks) args.push('--keep-tasks');
  if (o.backend) args.push('--backend', o.backend);
  return [ofmCommand(), ...args.map(shellQuote)].join(' ');
}
