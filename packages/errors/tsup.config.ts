import { ofmTsup } from '@ofm/tsup-preset';

export default ofmTsup();
