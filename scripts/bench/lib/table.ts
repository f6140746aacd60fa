/** Tables: printed aligned on the terminal, and as Markdown for docs/bench/*.md. */

export interface Table {
  readonly title: string
  readonly headers: ReadonlyArray<string>
  readonly rows: ReadonlyArray<ReadonlyArray<string>>
  /** Lines printed under the table (units, definitions). */
  readonly notes?: ReadonlyArray<string>
}

const width = (s: string) => [...s].length

export const renderText = (t: Table): string => {
  const cols = t.headers.map((h, i) => Math.max(width(h), ...t.rows.map((r) => width(r[i] ?? ""))))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(cols[i]!) : c.padStart(cols[i]!))).join("  ")
  return [
    `\n${t.title}`,
    line(t.headers),
    cols.map((w) => "-".repeat(w)).join("  "),
    ...t.rows.map(line),
    ...(t.notes ?? []).map((n) => `  ${n}`)
  ].join("\n")
}

export const renderMarkdown = (t: Table): string => {
  const esc = (s: string) => s.replace(/\|/g, "\\|")
  return [
    `**${t.title}**`,
    "",
    `| ${t.headers.map(esc).join(" | ")} |`,
    `|${t.headers.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`,
    ...t.rows.map((r) => `| ${r.map(esc).join(" | ")} |`),
    ...(t.notes && t.notes.length > 0 ? ["", ...t.notes.map((n) => `${n}  `)] : [])
  ].join("\n")
}

export const printTable = (t: Table) => console.log(renderText(t))
