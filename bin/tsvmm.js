#!/usr/bin/env node
// Entry point of the `tsvmm` command; the implementation is compiled TypeScript in dist/.
import { main } from '../dist/src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
