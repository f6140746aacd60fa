/**
 * `npm run dag -- <graph|task|future id> [--format text|mermaid|dot|json] [--watch] [--db] [--depth N]`
 *
 * The engine's debug view of a graph: `cairn dag` (src/cli/commands/dag.ts, drawn by src/dag).
 * One rule of its own, kept from when this was a separate program: with CAIRN_URL unset and
 * DATABASE_URL set (and no --url), it reads the database, as if --db were given.
 */
const args = process.argv.slice(2)
const set = (name: string) => (process.env[name] ?? "").trim() !== ""
const impliedDb = !args.includes("--db") && !args.some((a) => a === "--url" || a.startsWith("--url=")) && !set("CAIRN_URL") && set("DATABASE_URL")
process.argv = [process.argv[0]!, process.argv[1]!, "dag", ...(impliedDb ? ["--db"] : []), ...args]
await import("../src/cli/main.js")
