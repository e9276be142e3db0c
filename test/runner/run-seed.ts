// One seed per test run for every randomised test (durability kill times, fast-check), printed
// by the runner, passed into the test bed, reused by a retry, and replayed with
// TSVMM_TEST_SEED=<seed>.
export const SEED_VARIABLE = 'TSVMM_TEST_SEED';

export function runSeed(env: NodeJS.ProcessEnv, random: () => number = Math.random): { seed: number; fromEnv: boolean } {
  const given = env[SEED_VARIABLE];
  if (given !== undefined && given !== '') {
    const seed = Number(given);
    if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0x7fffffff) throw new RangeError(`${SEED_VARIABLE}=${given}: want an integer from 0 to ${0x7fffffff}`);
    return { seed, fromEnv: true };
  }
  return { seed: Math.floor(random() * 0x7fffffff), fromEnv: false };
}
