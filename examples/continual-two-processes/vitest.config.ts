import { ofmVitest } from '@ofm/vitest-preset';

// An example tests what a user installs: the built packages.
export default ofmVitest({}, { packages: 'dist' });
