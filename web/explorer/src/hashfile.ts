// Hashes a file the user picked without uploading it: SHA-256 over the file's stream, in
// chunks, reporting progress (models can be gigabytes; nothing is held whole in memory).
import { sha256 } from '@noble/hashes/sha2.js';
import { hex } from './tlog.ts';

export async function sha256File(file: File, progress: (done: number, total: number) => void): Promise<string> {
  const h = sha256.create();
  const reader = file.stream().getReader();
  let done = 0;
  let last = 0;
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    h.update(r.value);
    done += r.value.length;
    // Report about every 1% so the DOM is not the bottleneck.
    if (done - last >= file.size / 100 || done === file.size) {
      last = done;
      progress(done, file.size);
      await new Promise((res) => setTimeout(res, 0));
    }
  }
  progress(file.size, file.size);
  return `sha256:${hex(h.digest())}`;
}
