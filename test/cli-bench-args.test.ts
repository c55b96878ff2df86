// The benchmarks' options, as `headroom sim`, `headroom bench NAME` and `npm run bench:NAME` pass them:
// an unknown option is a usage error (exit 2, naming it and the accepted ones), not a full run. With
// includes/indexOf, `--quik` or `-q` ran the 11-minute sweep into bench/results/, and `--out=DIR` was
// ignored.

import { describe, expect, test } from "vitest";
import { parseBenchArgs } from "../bench/args.js";
import { sweepArgs } from "../bench/sim.js";
import { runCli } from "../src/cli.js";

const KNOWN = ["burst", "default", "mismatch", "two-racks"];
const RESULTS = "/repo/bench/results";
const sweep = (...argv: string[]) => sweepArgs(argv, KNOWN, RESULTS, () => "/tmp/headroom-sim-x");

async function run(...argv: string[]) {
  let stdout = "";
  let stderr = "";
  const code = await runCli(argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  });
  return { code, stdout, stderr };
}

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
  const options = { quick: { type: "boolean" }, a: { type: "string", dashValue: true }, n: { type: "string", short: "n", value: "N" } } as const;

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
