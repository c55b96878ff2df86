// Shared by the benchmarks: medians from benchmark.js samples, rounding for JSON lines, and output
// that keeps stdout to one JSON object per line.

import Benchmark from "benchmark";

/** Median seconds per call of fn over benchmark.js's samples. */
export function medianSeconds(fn: () => void, maxTimeS: number): number {
  const bench = new Benchmark(fn, { maxTime: maxTimeS, minSamples: 5, initCount: 1 });
  bench.run({ async: false });
  if (bench.error) throw bench.error;
  return median([...bench.stats.sample]);
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
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
