/**
 * The content app's memory cache of small files (src/content/app/body-cache.ts), on its own: the
 * byte budget, least-recently-used eviction, one read for concurrent misses, failures not kept,
 * and bodies that are views of larger buffers copied so that the budget counts what is held.
 */
import { describe, expect, it } from "vitest"
import { makeBodyCache } from "../src/content/app/body-cache.js"

const KiB = 1024
const body = (n: number, fill = 1) => Buffer.alloc(n, fill)

/** A reader that counts its calls per digest. */
const counting = () => {
  const reads = new Map<string, number>()
  return {
    reads,
    read: (sha: string, bytes: Buffer) => () => {
      reads.set(sha, (reads.get(sha) ?? 0) + 1)
      return Promise.resolve(bytes)
    }
  }
}

describe("content app body cache", () => {
  it("keeps files up to a sixteenth of the budget (at most 1 MiB)", () => {
    expect(makeBodyCache(64 * KiB).maxEntryBytes).toBe(4 * KiB)
    expect(makeBodyCache(1024 * 1024 * 1024).maxEntryBytes).toBe(1024 * KiB)
    expect(makeBodyCache(0).maxEntryBytes).toBe(0)
  })

  it("answers a hit synchronously, without reading again", async () => {
    const cache = makeBodyCache(64 * KiB)
    const r = counting()
    const first = cache.load("a", r.read("a", body(100)))
    expect(first).toBeInstanceOf(Promise)
    expect((await first).length).toBe(100)
    const again = cache.load("a", r.read("a", body(100)))
    expect(Buffer.isBuffer(again)).toBe(true)
    expect(r.reads.get("a")).toBe(1)
  })

  it("shares one read among concurrent misses for the same digest", async () => {
    const cache = makeBodyCache(64 * KiB)
    const r = counting()
    const all = await Promise.all(Array.from({ length: 10 }, () => cache.load("a", r.read("a", body(10)))))
    expect(all.every((b) => b.length === 10)).toBe(true)
    expect(r.reads.get("a")).toBe(1)
  })

  it("drops the least recently used entries beyond the budget", async () => {
    const cache = makeBodyCache(64 * KiB) // entries up to 4 KiB; 16 of them fit
    const r = counting()
    for (let i = 0; i < 16; i++) await cache.load(`f${i}`, r.read(`f${i}`, body(4 * KiB)))
    // Touch f0, so that f1 is now the least recently used.
    expect(Buffer.isBuffer(cache.load("f0", r.read("f0", body(4 * KiB))))).toBe(true)
    await cache.load("f16", r.read("f16", body(4 * KiB)))
    expect(Buffer.isBuffer(cache.load("f0", r.read("f0", body(4 * KiB))))).toBe(true)
    expect(cache.load("f1", r.read("f1", body(4 * KiB)))).toBeInstanceOf(Promise)
    expect(r.reads.get("f1")).toBe(2)
  })

  it("serves but does not keep files over the entry limit", async () => {
    const cache = makeBodyCache(64 * KiB)
    const r = counting()
    expect((await cache.load("big", r.read("big", body(5 * KiB)))).length).toBe(5 * KiB)
    await cache.load("big", r.read("big", body(5 * KiB)))
    expect(r.reads.get("big")).toBe(2)
  })

  it("does not remember a failed read", async () => {
    const cache = makeBodyCache(64 * KiB)
    await expect(cache.load("x", () => Promise.reject(new Error("damaged")))).rejects.toThrow("damaged")
    const r = counting()
    expect((await cache.load("x", r.read("x", body(3)))).length).toBe(3)
    expect(r.reads.get("x")).toBe(1)
  })

  it("keeps its own copy of a body that is a view of a larger buffer", async () => {
    const cache = makeBodyCache(64 * KiB)
    const big = Buffer.alloc(64 * KiB, 7)
    await cache.load("view", () => Promise.resolve(big.subarray(0, 10)))
    const kept = cache.load("view", () => Promise.reject(new Error("not read again")))
    expect(Buffer.isBuffer(kept)).toBe(true)
    const b = kept as Buffer
    expect(b.equals(Buffer.alloc(10, 7))).toBe(true)
    expect(b.buffer.byteLength).toBe(10)
  })
})
