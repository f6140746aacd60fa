/**
 * The artifact store's configuration (CAIRN_STORAGE, CAIRN_S3_*, CAIRN_CONTENT_REDIRECT*): an
 * invalid value stops a process at start, non-zero, with a message naming the variable; an object
 * store that cannot be used stops it naming the cause, and never prints the credentials.
 */
import { describe, expect, it } from "vitest"
import { createTestDatabase } from "./support/db.js"
import { spawnCairn } from "./support/processes.js"

const failsNaming = async (env: Record<string, string>, name: string, databaseUrl = "postgres://nobody@127.0.0.1:1/none") => {
  const p = spawnCairn("serve", { DATABASE_URL: databaseUrl, PORT: "0", ...env })
  const code = await p.exited
  expect(code, p.output()).not.toBe(0)
  expect(p.output()).toContain(name)
  return p.output()
}

describe("storage configuration", () => {
  it("an unknown CAIRN_STORAGE stops serve, naming it", () => failsNaming({ CAIRN_STORAGE: "floppy" }, "CAIRN_STORAGE"))
  it("CAIRN_STORAGE=s3 without CAIRN_S3_BUCKET stops serve, naming CAIRN_S3_BUCKET", () =>
    failsNaming({ CAIRN_STORAGE: "s3" }, "CAIRN_S3_BUCKET is required"))
  it("a CAIRN_S3_ENDPOINT that is not a URL, a CAIRN_S3_FORCE_PATH_STYLE that is not a boolean, half the credentials", async () => {
    await failsNaming({ CAIRN_STORAGE: "s3", CAIRN_S3_BUCKET: "b", CAIRN_S3_ENDPOINT: "minio:9000" }, "CAIRN_S3_ENDPOINT must be")
    await failsNaming({ CAIRN_STORAGE: "s3", CAIRN_S3_BUCKET: "b", CAIRN_S3_FORCE_PATH_STYLE: "yes please" }, "CAIRN_S3_FORCE_PATH_STYLE")
    await failsNaming({ CAIRN_STORAGE: "s3", CAIRN_S3_BUCKET: "b", AWS_ACCESS_KEY_ID: "AKIA-ONLY" }, "AWS_SECRET_ACCESS_KEY must be set")
  })
  it("CAIRN_CONTENT_REDIRECT=true with a local store stops serve, naming it; a bad CAIRN_CONTENT_REDIRECT_SECONDS too", async () => {
    await failsNaming({ CAIRN_CONTENT_REDIRECT: "true" }, "CAIRN_CONTENT_REDIRECT=true needs CAIRN_STORAGE=s3")
    await failsNaming({ CAIRN_STORAGE: "s3", CAIRN_S3_BUCKET: "b", CAIRN_CONTENT_REDIRECT: "true", CAIRN_CONTENT_REDIRECT_SECONDS: "0" }, "CAIRN_CONTENT_REDIRECT_SECONDS")
  })
  it("S3 settings are not looked at for a local store", async () => {
    // Set and nonsensical, but CAIRN_STORAGE is local: the process gets past configuration (and
    // fails only at the unreachable database).
    const p = spawnCairn("serve", {
      DATABASE_URL: "postgres://nobody@127.0.0.1:1/none",
      PORT: "0",
      CAIRN_S3_ENDPOINT: "minio:9000",
      CAIRN_S3_FORCE_PATH_STYLE: "perhaps",
      AWS_ACCESS_KEY_ID: "AKIA-ONLY"
    })
    await p.exited
    expect(p.output()).not.toMatch(/CAIRN_S3_|AWS_SECRET_ACCESS_KEY/)
  })
  it("an unreachable object store stops serve at start, naming the cause and not the secret", async () => {
    const out = await failsNaming({
      CAIRN_STORAGE: "s3",
      CAIRN_S3_BUCKET: "b",
      CAIRN_S3_ENDPOINT: "http://127.0.0.1:1",
      CAIRN_S3_FORCE_PATH_STYLE: "true",
      AWS_ACCESS_KEY_ID: "AKIAEXAMPLEKEYID",
      AWS_SECRET_ACCESS_KEY: "do-not-print-this-secret"
    }, "the object store at http://127.0.0.1:1 is unreachable (ECONNREFUSED)", await createTestDatabase())
    expect(out).not.toContain("do-not-print-this-secret")
  })
})
