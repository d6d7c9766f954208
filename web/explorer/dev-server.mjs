// Development server: serves the built explorer at /explorer/* with the node's CSP and proxies
// every other path to a running node (VOUCH_NODE), so the page runs same-origin as in production.
// Usage: VOUCH_NODE=http://127.0.0.1:PORT [PORT=8765] node dev-server.mjs
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const built = path.resolve(here, '../../crates/vouch-server/explorer');
const node = new URL(process.env.VOUCH_NODE ?? 'http://127.0.0.1:8080');
const port = Number(process.env.PORT ?? 8765);
const csp =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const files = {
  '/explorer': ['index.html', 'text/html; charset=utf-8'],
  '/explorer/': ['index.html', 'text/html; charset=utf-8'],
  '/explorer/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/explorer/app.css': ['app.css', 'text/css; charset=utf-8'],
};

http
  .createServer(async (req, res) => {
    const pathname = new URL(req.url ?? '/', 'http://x').pathname;
    const file = files[pathname];
    if (file) {
      try {
        const body = await readFile(path.join(built, file[0]));
        res.writeHead(200, { 'content-type': file[1], 'content-security-policy': csp, 'cache-control': 'no-cache' });
        res.end(body);
      } catch (e) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`not built: ${e}`);
      }
      return;
    }
    const upstream = http.request(
      { host: node.hostname, port: node.port, path: req.url, method: req.method, headers: { ...req.headers, host: node.host } },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', (e) => {
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'bad_gateway', message: String(e) } }));
    });
    req.pipe(upstream);
  })
  .listen(port, '127.0.0.1', () => console.log(`explorer dev server on http://127.0.0.1:${port}/explorer -> ${node.href}`));
