// npm run fuzz: every decoder of bench/fuzz-targets.ts (or --targets a,b) over --runs inputs each
// (default 100,000) from --seed (default: a fresh one, printed). One JSON line per target on stdout: inputs, accepted,
// rejections by code, crashes (0, or 1 with the counterexample), duration. Exit 1 on any crash.

import { FUZZ_TARGETS, fuzz } from "./fuzz-targets.js";
import { emit, note } from "./measure.js";
import { benchArgs } from "./args.js";

const { values: args } = benchArgs("fuzz", { runs: { type: "string", value: "N" }, seed: { type: "string", value: "S" }, targets: { type: "string", value: "LIST" } });
const runs = Number(args.runs ?? 100_000);
const seed = Number(args.seed ?? Date.now() % 2 ** 31);
if (!(Number.isInteger(runs) && runs > 0) || !Number.isInteger(seed)) {
  note("fuzz: --runs must be a whole number > 0 and --seed a whole number");
  process.exit(2);
}
note(`fuzz: ${runs} inputs per target, seed ${seed}`);
const wanted = args.targets?.split(",");
let crashes = 0;
for (const target of FUZZ_TARGETS.filter((t) => wanted === undefined || wanted.includes(t.name))) {
  const report = fuzz(target, runs, seed);
  crashes += report.crashes;
  note(`${target.name}: ${report.inputs} inputs, ${report.accepted} accepted, ${report.crashes} crashes, ${report.durationMs} ms`);
  emit({ bench: "fuzz", seed, ...report });
}
process.exitCode = crashes > 0 ? 1 : 0;
