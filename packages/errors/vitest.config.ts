import { ofmVitest } from '@ofm/vitest-preset';

export default ofmVitest();
