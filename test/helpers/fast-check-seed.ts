// Preloaded into every uvu process by scripts/test.mjs (node --import): every fast-check property
// of the run uses the run's seed (TSVMM_TEST_SEED), so a failure replays with that one variable.
import fc from 'fast-check';
import { runSeed } from '../runner/run-seed.js';

const { seed, fromEnv } = runSeed(process.env);
if (fromEnv) fc.configureGlobal({ ...fc.readConfigureGlobal(), seed });
