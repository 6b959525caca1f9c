/**
 * Writes a file so that a crash or error leaves either the old file or the new
 * one, never a partial file: into `<path>.tmp-<pid>-<n>`, flushed, then renamed
 * over `path`; the temp file is removed on failure.
 */
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';

let counter = 0;

/** Writes all of `bytes`, in pieces of at most 1 GiB (one write call is capped at 2 GiB), retrying short writes. */
export async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  let o = 0;
  while (o < bytes.byteLength) {
    const { bytesWritten } = await fh.write(bytes, o, Math.min(bytes.byteLength - o, 1 << 30));
    o += bytesWritten;
  }
}

export async function writeFileAtomically(path: string, chunks: Iterable<Uint8Array>): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${counter++}`;
  const fh = await open(tmp, 'w');
  try {
    try {
      for (const chunk of chunks) await writeAll(fh, chunk);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}
