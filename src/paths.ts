// Files shipped with headroom (the kernel build, the default profile), found from this module whether it
// runs from src/ under a TypeScript loader or from dist/src/ after the build.

import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

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

/**
 * A built module beside the calling one, for worker threads (which need JavaScript): next to the
 * caller in dist/, or, when the caller runs from src/ under a TypeScript loader (tests), its build in
 * dist/src/.
 */
export function builtSibling(callerUrl: string, file: string): URL {
  const sibling = new URL(file, callerUrl);
  if (!callerUrl.endsWith(".ts")) return sibling;
  const relative = fileURLToPath(sibling).slice(packageRoot().length);
  return pathToFileURL(join(packageRoot(), "dist", relative));
}
