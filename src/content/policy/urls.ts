/**
 * The URL policy: which URLs cairn fetches from, in one place. A remote's URL is checked when the
 * remote is created or changed (`../named.ts`), again before each download, and on every redirect
 * hop (`../download.ts`), so a remote can never point cairn at `file:` or anything but HTTP.
 */
import { Data, Either } from "effect"
import { isSafeRelativePath } from "./paths.js"

/** A URL cairn will not fetch (bad syntax, a scheme other than http/https, credentials). */
export class RemoteUrlError extends Data.TaggedError("RemoteUrlError")<{
  readonly url: string
  readonly message: string
}> {}

/** The URL as error messages may show it: without user info. */
export const shownUrl = (u: URL): string => {
  if (u.username === "" && u.password === "") return u.href
  const c = new URL(u.href)
  c.username = ""
  c.password = ""
  return c.href
}

/** A parsed URL cairn may fetch: http: or https:, without credentials. */
export const checkUrl = (u: URL): Either.Either<URL, RemoteUrlError> => {
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    return Either.left(
      new RemoteUrlError({ url: shownUrl(u), message: `remote URL must be http: or https:, not ${u.protocol} (${shownUrl(u)})` })
    )
  }
  // fetch refuses them anyway; credentials belong in the remote's settings, not in a URL that
  // ends up in logs and error messages.
  if (u.username !== "" || u.password !== "") {
    return Either.left(new RemoteUrlError({ url: shownUrl(u), message: `remote URL must not contain credentials: ${shownUrl(u)}` }))
  }
  return Either.right(u)
}

/** Parse a remote URL, accepting only http: and https: without credentials. */
export const checkRemoteUrl = (url: string): Either.Either<URL, RemoteUrlError> => {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return Either.left(new RemoteUrlError({ url, message: `not a valid URL: ${JSON.stringify(url)}` }))
  }
  return checkUrl(u)
}

/**
 * The URL of `relativePath` (a manifest entry's path) next to `manifestUrl`, as Pulp resolves it:
 * in the manifest's directory, without the manifest's query string. Each segment is
 * percent-encoded, so a `?`, `#`, `%`, `:` or `,` in a file name is part of the name, and the
 * result is checked to stay under the manifest's directory.
 */
export const resolveRelative = (manifestUrl: string | URL, relativePath: string): Either.Either<URL, RemoteUrlError> =>
  Either.gen(function*() {
    const base = yield* checkRemoteUrl(typeof manifestUrl === "string" ? manifestUrl : manifestUrl.href)
    if (!isSafeRelativePath(relativePath)) {
      return yield* Either.left(
        new RemoteUrlError({ url: shownUrl(base), message: `not a safe relative path: ${JSON.stringify(relativePath.slice(0, 200))}` })
      )
    }
    const dir = new URL(".", base)
    const resolved = new URL(relativePath.split("/").map(encodeURIComponent).join("/"), dir)
    if (resolved.origin !== dir.origin || !resolved.pathname.startsWith(dir.pathname)) {
      return yield* Either.left(
        new RemoteUrlError({ url: resolved.href, message: `${JSON.stringify(relativePath)} resolves outside ${dir.href}` })
      )
    }
    return resolved
  })
