import type { UserConfig } from 'vitest/config';
export declare function ofmVitest(overrides?: UserConfig['test']): UserConfig;
