/**
 * The content store end to end (test/support/content-scenario.ts) on each artifact store: the
 * local filesystem (the default: nothing set), and an S3-protocol server (s3rver, in this process)
 * with CAIRN_STORAGE=s3.
 */
import { createHash } from "node:crypto"
import { expect } from "vitest"
import { contentEndToEnd } from "./support/content-scenario.js"
import { type S3Server, startS3, storedObjects } from "./support/s3.js"

contentEndToEnd({ name: "local", start: async () => ({}), stop: async () => undefined })

let s3: S3Server | undefined
contentEndToEnd({
  name: "s3",
  start: async () => {
    s3 = await startS3()
    return s3.env("cairn/")
  },
  stop: async () => {
    await s3?.close()
  },
  verify: (files) => {
    const objects = storedObjects(s3!, "cairn/")
    const artifacts = [...objects].filter(([key]) => !key.startsWith("cairn/tmp/"))
    // Each synced file under its digest, each object's bytes hashing to its name; no leftovers.
    for (const bytes of Object.values(files)) {
      const sha = createHash("sha256").update(bytes).digest("hex")
      expect(objects.has(`cairn/${sha.slice(0, 2)}/${sha.slice(2, 4)}/${sha}`)).toBe(true)
    }
    for (const [key, bytes] of artifacts) expect(createHash("sha256").update(bytes).digest("hex")).toBe(key.split("/").at(-1))
    expect(artifacts.length).toBe(objects.size)
  }
})
