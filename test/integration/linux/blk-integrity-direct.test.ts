// virtio-blk data integrity in a real guest, the root image O_DIRECT (io_uring where the host has
// it): SIGKILL durability (test/helpers/durability.ts; the buffered root is blk-integrity.test.ts).
import { suite } from 'uvu';
import { whereLabel } from '../../helpers/where.js';
import { registerDurabilityTest } from '../../helpers/durability.js';

const test = suite(`virtio-blk integrity, O_DIRECT root [${whereLabel()}]`);
registerDurabilityTest(test, 'direct');
test.run();
