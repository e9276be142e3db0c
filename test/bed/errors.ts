// Typed errors of the nested-KVM test bed. Each message says what failed, with which value,
// and what to do about it, so the CLI can print `err.message` and nothing else.

/** Base class: every failure the test bed reports on purpose is a TestBedError. */
export class TestBedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Host packages the test bed needs are missing and we may not install them (not root). */
export class MissingPackagesError extends TestBedError {
  constructor(readonly packages: readonly string[]) {
    super(
      `the test bed needs the Debian package(s) ${packages.join(', ')}, which are not installed; ` +
        `run as root: apt-get install -y ${packages.join(' ')}`,
    );
  }
}

/** An external command (apt-cache, dpkg-deb, xz, ...) failed or could not be started. */
export class CommandFailedError extends TestBedError {
  constructor(
    readonly command: readonly string[],
    readonly exitCode: number | null,
    readonly stderrTail: string,
    hint: string,
  ) {
    const status = exitCode === null ? 'could not be run' : `exited with status ${exitCode}`;
    const err = stderrTail.trim() === '' ? '' : `: ${stderrTail.trim()}`;
    super(`\`${command.join(' ')}\` ${status}${err}; ${hint}`);
  }
}

/** The guest kernel package could not be resolved, downloaded or unpacked. */
export class KernelPackageError extends TestBedError {}

/** The kernel image inside the package is not what the test bed expects. */
export class KernelImageError extends TestBedError {}

/** A kernel module (or one of its dependencies) is missing from the kernel package. */
export class ModuleResolveError extends TestBedError {}

/** A caller passed options the test bed cannot honour (bad env name, bad path, ...). */
export class TestBedConfigError extends TestBedError {}
