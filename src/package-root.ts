// The repository (package) root, found from this file's location: dist/src/… and src/… both sit
// below it. For the addon's build/ folder, kernels/ scripts and bin/.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'binding.gyp'))) return dir;
    dir = dirname(dir);
  }
  throw new Error(`cannot find the tsvmm package root above ${fileURLToPath(import.meta.url)}`);
}
