/**
 * DATABASE_URL as every cairn connection reads it (the pool, the session, migrations).
 *
 * `sslmode` means what it means to libpq, psql and the managed databases' documentation:
 * `require` encrypts without checking the server's certificate (with `sslrootcert`, it checks the
 * chain like `verify-ca`), `verify-ca` checks the chain against `sslrootcert`, `verify-full` checks
 * the chain and the host name, `disable` does not encrypt. node-postgres 8 reads `prefer`,
 * `require` and `verify-ca` as `verify-full` (with a deprecation warning) unless the URL carries
 * `uselibpqcompat=true`, so a managed database's `?sslmode=require` with its private CA would be
 * refused. We add that parameter when the URL names a libpq mode and says nothing of it.
 * Differences that remain: without `sslmode` there is no TLS (libpq would try it first), and
 * `prefer` does not fall back to a plain connection when the server has no TLS.
 */
const LIBPQ_MODES = new Set(["disable", "prefer", "require", "verify-ca", "verify-full"])

export const withLibpqSslModes = (url: string): string => {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return url // not a URL (a key=value string or a socket path): node-postgres reads it as it is
  }
  const mode = parsed.searchParams.get("sslmode")
  if (mode === null || !LIBPQ_MODES.has(mode) || parsed.searchParams.has("uselibpqcompat")) return url
  // Appended as text, so that the rest of the URL stays exactly as the operator wrote it.
  return `${url}${parsed.search === "" ? "?" : "&"}uselibpqcompat=true`
}
