// The VMM's debug log (TSVMM_DEBUG set): lines on stderr prefixed with the time since the process
// started (ms, so that the order and gaps of events can be read) and the device's name. Absent
// when off, so that callers on a hot path skip building the line at all (`log?.(...)`).
export function debugLog(name: string, env: NodeJS.ProcessEnv = process.env): ((line: string) => void) | undefined {
  if (!env.TSVMM_DEBUG) return undefined;
  return (line) => void process.stderr.write(`[tsvmm +${performance.now().toFixed(1)} ms] ${name}: ${line}\n`);
}
