#!/usr/bin/env node
// Entry point of the `tsvmm` command; the implementation is compiled TypeScript in dist/.
// process.exit: a console attached to stdin must not keep the process alive once the VM is gone
// (stdout and stderr are synchronous on Linux, so nothing printed is lost).
import { main } from '../dist/src/cli/main.js';

process.exit(await main(process.argv.slice(2)));
