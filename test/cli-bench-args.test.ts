// The benchmarks' options, as `headroom sim`, `headroom bench NAME` and `npm run bench:NAME` pass them:
// an unknown option is a usage error (exit 2, naming it and the accepted ones), not a full run. With
// includes/indexOf, `--quik` or `-q` ran the 11-minute sweep into bench/results/, and `--out=DIR` was
// ignored.

import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import { parseBenchArgs } from "../bench/args.js";
import { sweepArgs } from "../bench/sim.js";
import { runCaptured as run } from "./fixtures/cli-run.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** A built bench script's exit code and stderr (the refusals come before anything runs). */
const script = (name: string, ...argv: string[]) => {
  const r = spawnSync(process.execPath, [join(root, "dist/bench", `${name}.js`), ...argv], { encoding: "utf8", timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

const KNOWN = ["burst", "default", "mismatch", "two-racks"];
const RESULTS = "/repo/bench/results";
const sweep = (...argv: string[]) => sweepArgs(argv, KNOWN, RESULTS, () => "/tmp/headroom-sim-x");

describe("bench:sim options", () => {
  test.each([[["--quik"]], [["-q"]], [["--quick", "extra"]], [["--quick", "--quick"]], [["--quick=yes"]], [["--out="]], [["--out", "--quick"]]])("%j is refused", (argv) => {
    expect(() => sweep(...argv)).toThrow(RangeError);
  });

  test("an unknown option is named with the accepted ones", () => {
    expect(() => sweep("--quik")).toThrow("unknown option --quik (accepted: --quick, --scenarios LIST, --policies LIST, --out DIR)");
  });

  test("--out=DIR is --out DIR", () => {
    expect(sweep("--out=/tmp/x", "--quick")).toMatchObject({ quick: true, outDir: "/tmp/x" });
    expect(sweep("--scenarios=burst", "--policies=headroom")).toMatchObject({ scenarios: ["burst"], policies: ["headroom"], outDir: "/tmp/headroom-sim-x" });
  });

  test.each([
    ["sim", "--quick", "--quik"],
    ["bench", "sim", "--quick", "--quik"],
  ])("headroom %s %s %s… is a usage error naming the option, nothing run", async (...argv) => {
    const { code, stdout, stderr } = await run(...argv);
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toContain("bench:sim: unknown option --quik (accepted: --quick, ");
  }, 30_000);
});

describe("parseBenchArgs", () => {
  const options = { quick: { type: "boolean" }, a: { type: "string", passOn: true }, n: { type: "string", short: "n", value: "N" } } as const;

  test("reads flags, values in both spellings, values passed on and positionals", () => {
    expect(parseBenchArgs(["--quick", "--a", "--workers 0", "-n", "3", "x"], options, { min: 1, max: 2 })).toEqual({ values: { quick: true, a: "--workers 0", n: "3" }, positionals: ["x"] });
    expect(parseBenchArgs(["--n=3"], options).values).toEqual({ n: "3" });
  });

  test.each([[["-a", "x"]], [["--n", "-3"]], [["--n"]], [["x"]], [["--", "--quick"]]])("%j is refused", (argv) => {
    expect(() => parseBenchArgs(argv, options)).toThrow(RangeError);
  });

  test("too few positionals", () => {
    expect(() => parseBenchArgs([], options, { min: 1, max: 1 })).toThrow("missing argument");
  });
});

describe("every bench entry point refuses what it does not know", () => {
  const SCRIPTS: [string, string][] = [
    ["kernel", "bench:kernel: unknown option --quik (accepted: --quick)"],
    ["kernel-ab", "bench:kernel-ab: unknown option --quik (accepted: --quick, --rounds N)"],
    ["predictors", "bench:predictors: unknown option --quik (accepted: --quick)"],
    ["rpc", "bench:rpc: unknown option --quik (accepted: --quick)"],
    ["pick-path", "bench:pick-path: unknown option --quik (accepted: --quick)"],
    ["pick-path-ab", "bench:pick-path-ab: unknown option --quik (accepted: none)"],
    ["crossover", "bench:crossover: unknown option --quik (accepted: --quick, --sizes LIST, --batches LIST, --worker-queue N, --worker-only)"],
    ["ws-ab", 'bench:ws-ab: unknown option --quik (accepted: --a "<server flags>", --b "<server flags>", --pairs N, --seconds S, --in-flight F, --all-pools)'],
    ["planner", "bench:planner: unknown option --quik (accepted: --quick)"],
    ["planner-eval", "bench:planner-eval: unknown option --quik (accepted: --quick, --out DIR)"],
    ["reliability", "bench:reliability: unknown option --quik (accepted: --quick)"],
    ["fuzz", "fuzz: unknown option --quik (accepted: --runs N, --seed S, --targets LIST)"],
    ["soak", "soak: unknown option --quik (accepted: --minutes N)"],
  ];

  test.each(SCRIPTS)("%s --quik exits 2 naming it and the accepted options", (name, message) => {
    // pick-path-ab and kernel-ab take positionals: given, so that only the option is wrong.
    const positionals = name === "pick-path-ab" ? [".", "."] : name === "kernel-ab" ? ["build/release.wasm"] : [];
    const { code, stdout, stderr } = script(name, ...positionals, "--quik");
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr.split("\n")[0]).toBe(message);
    expect(stderr).toContain(`usage: npm run ${name === "fuzz" || name === "soak" ? name : `bench:${name}`} --`);
  }, 30_000);

  test.each([
    ["pick-path-ab", ["."], "bench:pick-path-ab: missing argument"],
    ["pick-path-ab", [".", ".", "8", "9"], 'bench:pick-path-ab: unexpected argument "9" (accepted: none)'],
    ["kernel-ab", ["a.wasm", "b.wasm", "c.wasm"], 'bench:kernel-ab: unexpected argument "c.wasm" (accepted: --quick, --rounds N)'],
    ["planner-eval", ["--quick", "--out"], "bench:planner-eval: --out needs a value"],
    ["ws-ab", ["--a", "--workers 1", "--b", "", "--pairs"], "bench:ws-ab: --pairs needs a value"],
    ["fuzz", ["--runs", "10", "--runs", "20"], "fuzz: --runs given more than once"],
    ["crossover", ["--quick=1"], 'bench:crossover: --quick takes no value, got "1"'],
  ])("%s %j is a usage error", (name, argv, message) => {
    const { code, stderr } = script(name, ...argv);
    expect(code).toBe(2);
    expect(stderr.split("\n")[0]).toBe(message);
  }, 30_000);

  test("headroom bench NAME passes the refusal and its exit code on", async () => {
    const { code, stderr } = await run("bench", "kernel", "--quik");
    expect(code).toBe(2);
    expect(stderr).toContain("bench:kernel: unknown option --quik (accepted: --quick)");
  }, 30_000);
});
