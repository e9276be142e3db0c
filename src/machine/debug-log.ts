// The VMM's debug log (TSVMM_DEBUG set): lines on stderr prefixed with the device's name. Absent
// when off, so that callers on a hot path skip building the line at all (`log?.(...)`).
export function debugLog(name: string, env: NodeJS.ProcessEnv = process.env): ((line: string) => void) | undefined {
  if (!env.TSVMM_DEBUG) return undefined;
  return (line) => void process.stderr.write(`[tsvmm] ${name}: ${line}\n`);
}
