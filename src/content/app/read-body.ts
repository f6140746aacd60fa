/**
 * Reading a whole stored file into memory, for the cache of small files (`body-cache.ts`).
 *
 * A local store is read directly: the store's `path` (which checks that neither the file nor its
 * fan-out directories are symlinks), opened with O_NOFOLLOW like the store's own `open`, then one
 * fstat and one read into a buffer of exactly the expected size. That is a third of what a file
 * stream costs (a fiber, two more lstats, a 64 KiB chunk per file), and a cache miss is paid for
 * every file once. Stores without local files are read through their stream.
 *
 * Either way, a file whose size is not the one the database recorded is refused (the store is
 * damaged), so the cache never holds, nor counts wrongly, bytes that are not the artifact's.
 */
import type { Effect } from "effect"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import type { Readable } from "node:stream"
import type { ArtifactStorageShape } from "../storage.js"

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants

/** The stored file is not the artifact the database describes. */
export class DamagedArtifact extends Error {
  constructor(sha256: string, size: number) {
    super(`the artifact store is damaged: ${sha256} does not hold the ${size} bytes it was stored with`)
  }
}

const readLocal = async (file: string, sha256: string, size: number): Promise<Buffer> => {
  // O_NONBLOCK: a FIFO planted there must not hang the open; no effect on files.
  const fh = await fsp.open(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
  try {
    const st = await fh.stat()
    if (!st.isFile() || st.size !== size) throw new DamagedArtifact(sha256, size)
    // Not from Node's shared pool: a cached body must not keep a larger allocation alive.
    const body = Buffer.allocUnsafeSlow(size)
    let at = 0
    while (at < size) {
      const { bytesRead } = await fh.read(body, at, size - at, at)
      if (bytesRead === 0) throw new DamagedArtifact(sha256, size)
      at += bytesRead
    }
    return body
  } finally {
    await fh.close()
  }
}

const readStream = async (stream: Readable, sha256: string, size: number): Promise<Buffer> => {
  const body = Buffer.allocUnsafeSlow(size)
  let at = 0
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (at + chunk.length > size) throw new DamagedArtifact(sha256, size)
      chunk.copy(body, at)
      at += chunk.length
    }
  } finally {
    stream.destroy()
  }
  if (at !== size) throw new DamagedArtifact(sha256, size)
  return body
}

/** `run` runs an Effect as a promise that rejects with its error. */
export const makeBodyReader = (
  storage: ArtifactStorageShape,
  run: <A, E>(effect: Effect.Effect<A, E>) => Promise<A>
) =>
(sha256: string, size: number): Promise<Buffer> => {
  const file = storage.path(sha256)
  return file !== undefined
    ? readLocal(file, sha256, size)
    : run(storage.open(sha256)).then((stream) => readStream(stream, sha256, size))
}
