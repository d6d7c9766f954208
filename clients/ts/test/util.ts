// Test helpers: paths into the repository (vectors are read where they are published, not copied).
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// Tests are bundled into clients/ts/dist-test/, so the package root is one level up.
export const PKG = join(dirname(fileURLToPath(import.meta.url)), "..");
export const REPO = join(PKG, "..", "..");
export const FIXTURES = join(PKG, "test", "fixtures");
export const VECTORS = join(REPO, "crates", "vouch-verify", "tests", "vectors");

export const readText = (p: string) => readFileSync(p, "utf8");
export const readJson = (p: string): any => JSON.parse(readText(p));
export const readBytes = (p: string) => new Uint8Array(readFileSync(p));

export function jsonFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...jsonFiles(p));
    else if (p.endsWith(".json")) out.push(p);
  }
  return out.sort();
}

export const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v));
