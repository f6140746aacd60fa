/**
 * bench:churn compares a cycle's duration by windows of ten cycles, not by two single cycles (one
 * cycle is one noisy sample): ten around the reference cycle and the last ten. Shared by the
 * benchmark's own table and the Targets table of `npm run bench:report`.
 */

/** The two windows, or undefined when the run is too short for them not to overlap. */
export const durationWindows = <C extends { readonly cycle: number }>(cycles: ReadonlyArray<C>, reference: number) => {
  const early = cycles.filter((c) => c.cycle >= Math.max(1, reference - 4) && c.cycle <= reference + 5)
  const late = cycles.slice(-10)
  if (early.length === 0 || late.length === 0 || late[0]!.cycle <= early.at(-1)!.cycle) return undefined
  return { early, late }
}

/** "6-15": a window's first and last cycle. */
export const windowName = (w: ReadonlyArray<{ readonly cycle: number }>) => `${w[0]!.cycle}-${w.at(-1)!.cycle}`
