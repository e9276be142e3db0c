#!/usr/bin/env node
// Entry point of the `tsvmm` command; the implementation is compiled TypeScript in dist/.
// V8's tier-up thresholds are lowered first, before the device code is loaded (v8-tiering.ts
// says why); the rest is imported after that.
// process.exit: a console attached to stdin must not keep the process alive once the VM is gone
// (stdout and stderr are synchronous on Linux, so nothing printed is lost).
import { applyVmmTiering } from '../dist/src/cli/v8-tiering.js';

applyVmmTiering();
const { main } = await import('../dist/src/cli/main.js');
process.exit(await main(process.argv.slice(2)));
