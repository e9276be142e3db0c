// A virtio-fs device built with options the spec or this VMM does not allow (a tag that does not
// fit the 36-byte config field, too many request queues, a DAX window that is not 2 MiB aligned).
// Guest errors never throw: a malformed chain is returned with used length 0 and counted.

export class VirtioFsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VirtioFsError';
  }
}
