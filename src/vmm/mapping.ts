// Host memory that backs a guest-physical range: an anonymous MAP_NORESERVE mapping owned by the
// addon, seen from JS as an ArrayBuffer without copies.
import { NativeGuestMapping, native as addon } from './native.js';
import { native } from './errors.js';
import { DisposedError } from './errors.js';

export class HostMapping {
  private handle: NativeGuestMapping | undefined;

  private constructor(handle: NativeGuestMapping) {
    this.handle = handle;
  }

  /** Maps size bytes (a multiple of 4096) of zeroed, lazily allocated memory. */
  static allocate(size: number): HostMapping {
    return new HostMapping(native(() => new (addon().GuestMapping)(size)));
  }

  /** Another handle to a mapping created elsewhere (e.g. by the main thread, from a worker). */
  static attach(id: number): HostMapping {
    return new HostMapping(native(() => addon().GuestMapping.attach(id)));
  }

  get native(): NativeGuestMapping {
    if (!this.handle) throw new DisposedError('HostMapping');
    return this.handle;
  }

  get id(): number {
    return this.native.id;
  }

  get size(): number {
    return this.native.size;
  }

  /** The whole mapping as bytes; detached (length 0) after dispose(). */
  bytes(): Uint8Array {
    return new Uint8Array(this.native.buffer);
  }

  dispose(): void {
    this.handle?.close();
    this.handle = undefined;
  }
}
