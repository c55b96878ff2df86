// Shared by the benchmarks: medians from benchmark.js samples, rounding for JSON lines, output that
// keeps stdout to one JSON object per line, and the CPU steal a run saw on a virtual machine.

import { readFileSync } from "node:fs";
import Benchmark from "benchmark";

/** Median seconds per call of fn over benchmark.js's samples. */
export function medianSeconds(fn: () => void, maxTimeS: number): number {
  const bench = new Benchmark(fn, { maxTime: maxTimeS, minSamples: 5, initCount: 1 });
  bench.run({ async: false });
  if (bench.error) throw bench.error;
  return median([...bench.stats.sample]);
}

/** This process's CPU time so far (user + system, every thread), in µs. */
export function processCpuUs(): number {
  const used = process.cpuUsage();
  return used.user + used.system;
}

/**
 * CPU time (user + system) so far in µs of what a /proc stat file describes: `/proc/<pid>/stat` for a
 * process, `/proc/thread-self/stat` for the calling thread alone. Linux counts it in ticks of 10 ms.
 */
export function procCpuUs(statPath: string): number {
  const stat = readFileSync(statPath, "utf8");
  const fields = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
  // After the command: state is field 3; utime and stime are fields 14 and 15.
  return (Number(fields[14 - 3]) + Number(fields[15 - 3])) * 10_000;
}

/** CPU microseconds (user + system) per item over one round of `roundMs` of `step`, which returns how many items it did. */
export async function cpuUsPerItem(step: () => Promise<number>, roundMs: number): Promise<number> {
  const before = processCpuUs();
  const untilMs = performance.now() + roundMs;
  let items = 0;
  while (performance.now() < untilMs) items += await step();
  return (processCpuUs() - before) / items;
}

export function median(values: number[]): number {
  return quantile([...values].sort((a, b) => a - b), 0.5);
}

/** The value at quantile q (0 to 1) of values sorted ascending: the one below which a share q lies. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

export function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export function emit(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

export function note(text: string): void {
  process.stderr.write(`${text}\n`);
}

interface CpuTimes {
  steal: number;
  total: number;
}

/**
 * The machine's CPU time so far from /proc/stat (all cores, in clock ticks); null where there is none.
 * On a virtual machine, `steal` is time its cores were ready but the host ran someone else.
 */
function cpuTimes(): CpuTimes | null {
  let line: string | undefined;
  try {
    line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0];
  } catch {
    return null;
  }
  // cpu user nice system idle iowait irq softirq steal guest guest_nice
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (ticks.length < 8 || ticks.some((t) => !Number.isFinite(t))) return null;
  return { steal: ticks[7], total: ticks.reduce((a, b) => a + b, 0) };
}

/** Percent of the machine's CPU time stolen between two readings; null when either is missing. */
function stealPct(before: CpuTimes | null, after: CpuTimes | null): number | null {
  if (before === null || after === null || after.total <= before.total) return null;
  return round((100 * (after.steal - before.steal)) / (after.total - before.total), 1);
}

/** `run`'s result with the machine's CPU steal while it ran. */
export function withSteal<T extends object>(run: () => T): T & { stealPct: number | null } {
  const before = cpuTimes();
  const result = run();
  return { ...result, stealPct: stealPct(before, cpuTimes()) };
}
