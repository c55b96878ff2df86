// Files shipped with headroom (the kernel build, the default profile), found from this module whether it
// runs from src/ under a TypeScript loader or from dist/src/ after the build.

import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

let root: string | null = null;

/** The directory holding headroom's package.json. */
export function packageRoot(): string {
  if (root !== null) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5 && !existsSync(join(dir, "package.json")); i++) dir = dirname(dir);
  root = dir;
  return dir;
}

export function shippedFile(...parts: string[]): string {
  return join(packageRoot(), ...parts);
}
