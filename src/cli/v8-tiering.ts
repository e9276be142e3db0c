// V8's tier-up thresholds, lowered for a VMM (applied by bin/tsvmm.js before anything else loads).
//
// A VMM's hot code is small and runs once per guest request for as long as the VM lives: the
// virtqueue walk, request parsing, completion. V8 counts its way to TurboFan in bytecode executed
// (--interrupt-budget, 66 KiB of a function's bytecode per profiler tick) and, after any new type
// feedback, in invocations (--minimum-invocations-after-ic-update, 500). Its defaults suit a web
// page, most of whose code runs a few times; here they leave the request path in baseline
// (Sparkplug) code for thousands of requests after every deoptimization, and one comes with the
// first request of each new kind: the first FLUSH, for instance, deoptimizes parseRequest
// (`--trace-deopt`: "Insufficient type feedback") and the device's start (a new op shape). In the
// nested test bed, where a guest makes 250-800 requests a second, that is seconds: the bench's
// timed write runs began right after the FLUSH that ends their warm-up and ran unoptimized
// (bench/README.md, session 9: with these values, the device path's main-thread CPU per 4 KiB
// write fell from 1484 to 974 µs there, and the 1 MiB reads' from 5788 to 3307).
//
// The values are V8 flags, so they hold for the whole process (vCPU worker threads included);
// TSVMM_V8_TIERING=default leaves V8's own, to measure the difference.

import { setFlagsFromString } from 'node:v8';

/** 1/8 of V8's --interrupt-budget (67584) and 1/10 of its --minimum-invocations-after-ic-update. */
export const VMM_TIERING_FLAGS: readonly string[] = ['--interrupt-budget=8192', '--minimum-invocations-after-ic-update=50'];

export const TIERING_ENV = 'TSVMM_V8_TIERING';

/**
 * Sets VMM_TIERING_FLAGS unless env[TIERING_ENV] is 'default'; returns the flags set. Call it
 * before the device modules are loaded: each function's budget is taken from the flag when its
 * counter is (re)started.
 */
export function applyVmmTiering(env: NodeJS.ProcessEnv = process.env): readonly string[] {
  if (env[TIERING_ENV] === 'default') return [];
  for (const flag of VMM_TIERING_FLAGS) setFlagsFromString(flag);
  return VMM_TIERING_FLAGS;
}
