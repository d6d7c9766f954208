// Builds the explorer into crates/vouch-server/explorer/{index.html,app.js,app.css}, the three
// files the `vouch` binary embeds. Deterministic: same sources, same bytes (no timestamps, no
// absolute paths, no sourcemap), so a test can rebuild and compare with the committed files.
import { build } from 'esbuild';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
// `--out DIR` builds elsewhere (the test that compares a fresh build with the embedded files).
const at = process.argv.indexOf('--out');
const out = at > 0 && process.argv[at + 1]
  ? path.resolve(process.argv[at + 1])
  : path.resolve(here, '../../crates/vouch-server/explorer');
await mkdir(out, { recursive: true });
if (!existsSync(path.resolve(here, '../../clients/ts/node_modules/@noble'))) {
  console.error('clients/ts/node_modules is missing: run `npm ci` in clients/ts first (the verifier\'s @noble/* deps are bundled from there)');
  process.exit(1);
}

const common = {
  bundle: true,
  minify: true,
  sourcemap: false,
  legalComments: 'none',
  target: ['es2022'],
  absWorkingDir: here,
  // The verifier library's own deps (@noble/*) resolve from clients/ts/node_modules.
  nodePaths: [path.resolve(here, '../../clients/ts/node_modules'), path.resolve(here, 'node_modules')],
  write: false,
  logLevel: 'warning',
};

const js = await build({
  ...common,
  entryPoints: ['src/main.ts'],
  format: 'iife',
  platform: 'browser',
  charset: 'utf8',
});
const css = await build({ ...common, entryPoints: ['src/app.css'], loader: { '.css': 'css' } });

const html = await readFile(path.join(here, 'src/index.html'));
await writeFile(path.join(out, 'index.html'), html);
await writeFile(path.join(out, 'app.js'), js.outputFiles[0].contents);
await writeFile(path.join(out, 'app.css'), css.outputFiles[0].contents);
for (const f of ['index.html', 'app.js', 'app.css']) {
  const { size } = statSync(path.join(out, f));
  console.log(`${f}\t${size} bytes`);
}
