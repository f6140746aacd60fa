// Preloaded (node --import) into a cairn worker whose handler start times a benchmark reads from
// its `cairn.run` spans. Effect's span clock is aligned to the epoch once, from Date.now() (whole
// milliseconds), while the benchmark and the other systems' workers read
// performance.timeOrigin + performance.now(): the two differ by a millisecond or more (measured
// here: 0.9-3.7 ms), as much as the latencies compared. This prints the difference, so that the
// benchmark can put the spans on the common clock.
// Plain JavaScript: it runs before tsx's loader is registered. It imports the same `effect` module
// the worker does (one module instance per process), so it reads the same clock.
import { Clock, Effect } from "effect"

const effectMs = Number(Effect.runSync(Clock.currentTimeNanos)) / 1e6
const epochMs = performance.timeOrigin + performance.now()
process.stdout.write(`EFFECT_CLOCK_OFFSET_MS ${effectMs - epochMs}\n`)
