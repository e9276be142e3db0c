// virtio-blk data integrity in a real guest, the root image buffered: SIGKILL durability
// (test/helpers/durability.ts; the O_DIRECT root is blk-integrity-direct.test.ts, the 256 MiB
// write/read-back write-read-256mib.test.ts).
import { suite } from 'uvu';
import { whereLabel } from '../../helpers/where.js';
import { registerDurabilityTest } from '../../helpers/durability.js';

const test = suite(`virtio-blk integrity, buffered root [${whereLabel()}]`);
registerDurabilityTest(test, 'buffered');
test.run();
