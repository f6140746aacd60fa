/**
 * An S3-protocol object store in a process of its own (so that it can run on a host of its own: a
 * network namespace in test/cluster): s3rver on one address and port, keeping objects under a
 * directory, with one bucket. s3rver takes any signature; its credentials are S3RVER / S3RVER.
 *
 *   node --import tsx scripts/lib/s3-server.ts <directory> <address> <port> <bucket>
 *
 * Prints `s3 ready http://<address>:<port>` once it listens; stops on SIGTERM.
 */
interface S3rverInstance {
  run(): Promise<{ port: number }>
  close(): Promise<void>
}
type S3rverClass = new(options: Record<string, unknown>) => S3rverInstance

const [directory, address, port, bucket] = process.argv.slice(2)
if (!directory || !address || !port || !bucket) {
  console.error("usage: s3-server.ts <directory> <address> <port> <bucket>")
  process.exit(2)
}

// s3rver is a dev dependency of the S3 storage backend; say so plainly where it is missing.
const name = "s3rver"
const S3rver = await import(name).then(
  (m: { default: S3rverClass }) => m.default,
  (e: Error) => {
    console.error(`cannot load ${name} (${e.message}): it is installed with the S3 storage backend's dev dependencies`)
    process.exit(1)
  }
)

const server = new S3rver({ address, port: Number(port), silent: true, directory, configureBuckets: [{ name: bucket }] })
const { port: listening } = await server.run()
console.log(`s3 ready http://${address}:${listening}`)

process.once("SIGTERM", () => {
  void server.close().finally(() => process.exit(0))
})
