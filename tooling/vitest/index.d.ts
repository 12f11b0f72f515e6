import type { UserConfig } from 'vitest/config';
/** Aliases from each workspace package name (and its `/browser` and `/experiments` entries) to its TypeScript sources. */
export declare function sourceAliases(): { find: string | RegExp; replacement: string }[];
/** The shared config; `packages: 'dist'` tests the built packages (the examples do). */
export declare function ofmVitest(overrides?: UserConfig['test'], options?: { packages?: 'src' | 'dist' }): UserConfig;
