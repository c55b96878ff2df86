// Where a server's event loop stalled: reads a V8 CPU profile (`node --cpu-prof`) and prints each
// period the main thread was busy without a break for at least MIN_MS, with the functions that took
// most of it. A busy period is a run of samples none of which is "(idle)"; under an open loop of
// requests the normal ones are short, so the long ones are the stalls that make the tail.
// Usage: node --cpu-prof --cpu-prof-dir=D dist/bench/rpc-server.js 16 (load it, stop it with SIGTERM),
// then node dist/bench/busy-periods.js D/<file>.cpuprofile [MIN_MS, default 20] [FROM_S, default 3:
// skips start-up]. JSON lines on stdout, longest first.

import { readFileSync } from "node:fs";
import { emit, round } from "./measure.js";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [path, minArg, fromArg] = process.argv.slice(2);
if (path === undefined) {
  process.stderr.write("usage: busy-periods.js <profile.cpuprofile> [minMs] [fromS]\n");
  process.exit(2);
}
const MIN_MS = Number(minArg ?? 20);
const FROM_US = Number(fromArg ?? 3) * 1e6;
const TOP = 4;

const profile = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const nameOf = (id: number) => {
  const f = byId.get(id)!.callFrame;
  return `${f.functionName || "(anonymous)"} ${f.url.split("/").slice(-2).join("/")}:${f.lineNumber}`;
};

interface Busy {
  startUs: number;
  endUs: number;
  /** Microseconds by function, self time. */
  self: Map<string, number>;
}

const periods: Busy[] = [];
let current: Busy | null = null;
let t = 0;
for (let i = 0; i < profile.samples.length; i++) {
  t += profile.timeDeltas[i];
  const id = profile.samples[i];
  // A sample stands for the time until the next one.
  const dt = profile.timeDeltas[i + 1] ?? 0;
  if (byId.get(id)!.callFrame.functionName === "(idle)") {
    if (current !== null) periods.push(current);
    current = null;
    continue;
  }
  current ??= { startUs: t, endUs: t, self: new Map() };
  current.endUs = t + dt;
  current.self.set(nameOf(id), (current.self.get(nameOf(id)) ?? 0) + dt);
}
if (current !== null) periods.push(current);

const stalls = periods.filter((p) => p.startUs >= FROM_US && p.endUs - p.startUs >= MIN_MS * 1000).sort((a, b) => b.endUs - b.startUs - (a.endUs - a.startUs));
for (const p of stalls) {
  const top = [...p.self].sort((a, b) => b[1] - a[1]).slice(0, TOP);
  emit({ atS: round(p.startUs / 1e6, 2), busyMs: round((p.endUs - p.startUs) / 1000, 1), top: Object.fromEntries(top.map(([name, us]) => [name, round(us / 1000, 1)])) });
}
