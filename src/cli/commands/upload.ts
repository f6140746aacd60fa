/**
 * `cairn upload <file> [--repo <name> [--path <relative>]]`: stream a file into an artifact (its
 * sha256 computed first, so the server checks it), with a progress bar for large files on a
 * terminal; with --repo, add it to the repository (a repository.modify task) and wait for the version.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Console, Effect, Option } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import type { CairnClientShape } from "../../client/effect.js"
import { CairnError } from "../../client/errors.js"
import { awaitFuture, submitGraph } from "../../client/graphs.js"
import { uploadFile, type UploadResult } from "../../client/upload.js"
import { CliError, common, connection, printJson, withClient } from "../common.js"
import { progressBar } from "../display.js"
import { requireSuccess, waitForGraph } from "../follow.js"

/** Below this a bar would only flash. */
const BAR_FROM_BYTES = 8 * 1024 * 1024

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`

/** A one-line bar on stderr (stdout stays the command's output), redrawn at most 10 times a second. */
const progressReporter = (name: string, size: number) => {
  if (process.stderr.isTTY !== true || size < BAR_FROM_BYTES) return { onProgress: undefined, clear: () => undefined }
  let lastDraw = 0
  const draw = (sent: number) =>
    process.stderr.write(`\r\x1b[Kuploading ${name} ${progressBar(sent, size, 30)} ${Math.floor((sent / size) * 100)}% ${mib(sent)}/${mib(size)}`)
  return {
    onProgress: (sent: number) => {
      const now = Date.now()
      if (now - lastDraw < 100 && sent < size) return
      lastDraw = now
      draw(sent)
    },
    clear: () => process.stderr.write("\r\x1b[K")
  }
}

const checkFile = (file: string) =>
  Effect.tryPromise({
    try: () => fs.stat(file),
    catch: (e) =>
      new CliError({ message: `cannot read ${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}` })
  }).pipe(
    Effect.filterOrFail((s) => s.isFile(), () => new CliError({ message: `${file} is not a file` }))
  )

const send = (conn: { url: string; token: string | undefined }, file: string, size: number) => {
  const bar = progressReporter(path.basename(file), size)
  return Effect.tryPromise({
    try: (signal) => uploadFile(conn, file, { signal, onProgress: bar.onProgress }),
    catch: (e) => (e instanceof CairnError ? e : new CliError({ message: `cannot upload ${file}: ${(e as Error).message}` }))
  }).pipe(Effect.ensuring(Effect.sync(bar.clear)))
}

/** Add the uploaded artifact to `repository` at `relativePath`, follow the task, return the version. */
const addToRepository = (client: CairnClientShape, json: boolean, repository: string, relativePath: string, up: UploadResult) =>
  Effect.gen(function*() {
    const submitted = yield* submitGraph(client, {
      label: `add ${relativePath} to ${repository}`,
      nodes: { add: { task: "repository.modify", params: { repository, add: [{ relative_path: relativePath, artifact: up.artifact }] } } }
    })
    const final = yield* waitForGraph(client, submitted.id, { json })
    if (json && final.state !== "succeeded") yield* printJson({ upload: up, graph: final })
    yield* requireSuccess(final)
    const version = yield* awaitFuture(client, submitted.nodes.add!.outputs.version!)
    return { graph: final, version: version.value as { number?: number } | undefined }
  })

export const uploadCommand = Command.make(
  "upload",
  {
    ...common,
    file: Args.file({ name: "file" }).pipe(Args.withDescription("The file to upload.")),
    repo: Options.text("repo").pipe(Options.withDescription("Add the file to this repository (a new version)."), Options.optional),
    path: Options.text("path").pipe(Options.withDescription("Its relative path in the repository (default: the file's name)."), Options.optional)
  },
  (c) =>
    Effect.gen(function*() {
      if (Option.isSome(c.path) && Option.isNone(c.repo)) {
        return yield* new CliError({ message: "--path needs --repo (the repository to add the file to)", exitCode: 2 })
      }
      const stat = yield* checkFile(c.file)
      const conn = yield* connection(c)
      const up = yield* send(conn, c.file, stat.size)
      if (Option.isNone(c.repo)) {
        return yield* c.json ? printJson(up) : Console.log(`uploaded ${c.file}: artifact ${up.artifact} (${up.size} bytes, sha256 ${up.sha256})`)
      }
      const repo = c.repo.value
      const relativePath = Option.getOrElse(c.path, () => path.basename(c.file))
      if (!c.json) yield* Console.log(`uploaded ${c.file}: artifact ${up.artifact}; adding it to ${repo} as ${relativePath}`)
      const added = yield* withClient(c, (client) => addToRepository(client, c.json, repo, relativePath, up))
      yield* c.json
        ? printJson({ upload: up, graph: added.graph, version: added.version })
        : Console.log(`repository ${repo} is at version ${added.version?.number ?? "?"}`)
    })
).pipe(Command.withDescription("Upload a file as an artifact; with --repo, add it to a repository and wait for the new version."))
