// Pure stream helpers for the serial console: CRLF -> LF (the guest tty and the kernel write
// \r\n), splitting into lines, and keeping the last lines for error messages.

/** Turns \r\n into \n across chunk boundaries; a lone \r (progress bars) is kept. */
export class CrlfNormalizer {
  private pendingCr = false;

  push(chunk: string): string {
    let s = (this.pendingCr ? '\r' : '') + chunk;
    this.pendingCr = s.endsWith('\r');
    if (this.pendingCr) s = s.slice(0, -1);
    return s.replace(/\r+\n/g, '\n');
  }

  flush(): string {
    const s = this.pendingCr ? '\r' : '';
    this.pendingCr = false;
    return s;
  }
}

/** Collects text and hands back complete lines (without the \n). */
export class LineSplitter {
  private partial = '';

  push(text: string): string[] {
    const parts = (this.partial + text).split('\n');
    this.partial = parts.pop() ?? '';
    return parts;
  }

  flush(): string[] {
    const rest = this.partial;
    this.partial = '';
    return rest === '' ? [] : [rest];
  }
}

/** The last `max` lines pushed. */
export class LineTail {
  private readonly lines: string[] = [];
  constructor(private readonly max: number) {}

  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.shift();
  }

  text(): string {
    return this.lines.join('\n');
  }
}
