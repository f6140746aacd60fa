/**
 * Every advisory lock call in the code uses a lock registered in src/db/locks.ts: the class of a
 * two-key lock `(class, key)` is a registered class (its number, `${LockClass.<name>}` or a named
 * alias of one), and the key of a one-key lock is a registered key. Scanned: the TypeScript and SQL
 * under src/, scripts/ and test/, and the migrations.
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { ARTIFACT_LOCK_CLASS } from "../src/content/artifacts.js"
import { LockClass, MIGRATION_LOCK } from "../src/db/locks.js"
import { projectRoot } from "../src/db/sql-files.js"

const SELF = "test/advisory-locks.test.ts"

/** Constants other modules name a registered class by. */
const ALIASES: Record<string, number> = { ARTIFACT_LOCK_CLASS }

const classes = new Set<number>(Object.values(LockClass))
const twoKeyClass = (arg: string): boolean => {
  if (/^\d+$/.test(arg)) return classes.has(Number(arg))
  const named = /^\$\{(?:LockClass\.(\w+)|(\w+))\}$/.exec(arg)
  if (named?.[1] !== undefined) return named[1] in LockClass
  if (named?.[2] !== undefined) return named[2] in ALIASES && classes.has(ALIASES[named[2]]!)
  return false
}
const oneKey = (arg: string) => arg === "${MIGRATION_LOCK}" || arg.replaceAll("_", "") === String(MIGRATION_LOCK)

const files = async (dir: string, exts: ReadonlyArray<string>): Promise<Array<string>> => {
  const out: Array<string> = []
  for (const e of await fs.readdir(path.join(projectRoot, dir), { withFileTypes: true })) {
    const rel = `${dir}/${e.name}`
    if (e.isDirectory()) out.push(...(await files(rel, exts)))
    else if (exts.some((x) => e.name.endsWith(x))) out.push(rel)
  }
  return out
}

/** The arguments of the call whose "(" is at `open`, split at top-level commas, trimmed. */
const argumentsAt = (text: string, open: number): Array<string> | undefined => {
  const args: Array<string> = []
  let depth = 0
  let start = open + 1
  for (let i = open + 1; i < text.length; i++) {
    const ch = text[i]!
    if (ch === "(" || ch === "{" || ch === "[") depth++
    else if ((ch === ")" || ch === "}" || ch === "]") && depth > 0) depth--
    else if (ch === ")" || (ch === "," && depth === 0)) {
      args.push(text.slice(start, i).trim())
      if (ch === ")") return args
      start = i + 1
    }
  }
  return undefined
}

const CALL = /pg_(?:try_)?advisory_(?:xact_)?(?:un)?lock(?:_shared)?\s*\(/g

/** Every advisory lock call in `text` whose lock is not registered, as "file:line: call". */
const unregistered = (file: string, text: string) => {
  const bad: Array<string> = []
  for (const m of text.matchAll(CALL)) {
    const args = argumentsAt(text, m.index + m[0].length - 1)
    const ok = args?.length === 2 ? twoKeyClass(args[0]!) : args?.length === 1 ? oneKey(args[0]!) : false
    if (!ok) bad.push(`${file}:${text.slice(0, m.index).split("\n").length}: ${text.slice(m.index, m.index + 80).split("\n")[0]}`)
  }
  return bad
}

describe("advisory locks", () => {
  it("are registered with distinct classes", () => {
    expect(classes.size).toBe(Object.keys(LockClass).length)
  })

  it("are taken only with registered classes and keys, in TypeScript and SQL", async () => {
    const scanned = [
      ...(await files("src", [".ts", ".sql"])),
      ...(await files("scripts", [".ts"])),
      ...(await files("test", [".ts"])).filter((f) => f !== SELF),
      ...(await files("drizzle", [".sql"]))
    ]
    const bad: Array<string> = []
    let calls = 0
    for (const file of scanned) {
      const text = await fs.readFile(path.join(projectRoot, file), "utf8")
      calls += [...text.matchAll(CALL)].length
      bad.push(...unregistered(file, text))
    }
    expect(bad).toEqual([])
    // The scan sees the calls at all (the FCFS keys, the reaper, workers, digests, migrations).
    expect(calls).toBeGreaterThan(10)
  })

  it("flags a class or key that is not registered", () => {
    expect(unregistered("x.sql", "PERFORM pg_advisory_xact_lock(9, hashtext(k));")).toEqual(["x.sql:1: pg_advisory_xact_lock(9, hashtext(k));"])
    expect(unregistered("x.ts", "sql`SELECT pg_try_advisory_lock(${OTHER}, 1)`")).toHaveLength(1)
    expect(unregistered("x.ts", "client.query(\"SELECT pg_advisory_lock($1)\", [7])")).toHaveLength(1)
    expect(unregistered("x.ts", "sql`SELECT pg_advisory_xact_lock_shared(${LockClass.artifactDigest}, hashtext(s))`")).toEqual([])
    expect(unregistered("x.sql", "SELECT pg_advisory_unlock(2, w.lock_key::integer)")).toEqual([])
  })
})
