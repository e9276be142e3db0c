// One owner for everything a VM build creates (fds, mappings, watchers, devices): each resource
// is pushed as it is made, and disposal releases them all in reverse order, going on when one
// step throws, so a failed build or a dispose that hits an error leaks nothing. (Node 20 has no
// DisposableStack; this is its async subset.)

export type Release = () => void | Promise<void>;

export class DisposalError extends AggregateError {
  constructor(errors: unknown[]) {
    super(errors, `${errors.length} resources failed to release: ${errors.map((e) => (e instanceof Error ? e.message : String(e))).join('; ')}`);
    this.name = 'DisposalError';
  }
}

export class DisposalStack {
  private releases: { what: string; release: Release }[] = [];
  private disposed = false;

  /** Registers `release` to run at disposal; `what` names it in a failure. */
  defer(what: string, release: Release): void {
    if (this.disposed) throw new Error(`DisposalStack: ${what} registered after disposal`);
    this.releases.push({ what, release });
  }

  /** Registers an object with dispose() and returns it (for `const x = stack.use(...)`). */
  use<T extends { dispose(): void | Promise<void> }>(what: string, resource: T): T {
    this.defer(what, () => resource.dispose());
    return resource;
  }

  get size(): number {
    return this.releases.length;
  }

  /**
   * Releases everything, last registered first. Every release runs even when some throw; the
   * failures are thrown together at the end (the one error, or a DisposalError). Idempotent.
   */
  async dispose(): Promise<void> {
    this.disposed = true;
    const errors: unknown[] = [];
    while (this.releases.length > 0) {
      const { what, release } = this.releases.pop() as { what: string; release: Release };
      try {
        await release();
      } catch (e) {
        errors.push(e instanceof Error ? Object.assign(e, { message: `${what}: ${e.message}` }) : new Error(`${what}: ${String(e)}`));
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new DisposalError(errors);
  }
}
