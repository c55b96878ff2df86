// `headroom pod-sim`'s fleet: a name or port given twice is a usage error (exit 2), a port in use one
// line and exit 1, never a stack trace; ports and TP are digits only (0x50 listened on port 80).

import { once } from "node:events";
import { createServer, type AddressInfo } from "node:net";
import { describe, expect, test } from "vitest";
import { parsePodSpec } from "../src/cli.js";
import { runCaptured as run } from "./fixtures/cli-run.js";

describe("pod-sim --pod", () => {
  test.each(["a:both:0x50", "a:both:8e3", "a:both: ", "a:both:+80", "a:both:80.0", "a:both:80:0x2", "a:both:80:2.0", "a:both:80:1e1", "a:both:80: 2"])("%s is refused", (spec) => {
    expect(() => parsePodSpec(spec)).toThrow(/the port must be|TP must be/);
  });

  test("digits are read as before", () => {
    expect(parsePodSpec("a:both:8080:2")).toEqual({ name: "a", role: "both", port: 8080, tp: 2 });
    expect(parsePodSpec("a:prefill")).toEqual({ name: "a", role: "prefill", port: 0, tp: 1 });
  });

  test.each([
    [["--pod", "a:both", "--pod", "a:decode"], "headroom pod-sim: --pod: the name a is given twice"],
    [["--pod", "a:both:45678", "--pod", "b:both:45678"], "headroom pod-sim: --pod: the port 45678 is given twice"],
  ])("%j is a usage error, not a stack trace", async (args, message) => {
    const { code, stdout, stderr } = await run("pod-sim", ...args);
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr.split("\n")[0]).toBe(message);
    expect(stderr).toContain("Usage: headroom pod-sim");
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  test("a port in use is one line and exit 1, not a stack trace", async () => {
    const taken = createServer().listen(0, "127.0.0.1");
    await once(taken, "listening");
    const { port } = taken.address() as AddressInfo;
    try {
      const { code, stdout, stderr } = await run("pod-sim", "--pod", "a:prefill", "--pod", `b:decode:${port}`);
      expect(code).toBe(1);
      expect(stdout).toBe("");
      expect(stderr).toBe(`headroom pod-sim: cannot listen: listen EADDRINUSE: address already in use 127.0.0.1:${port}\n`);
    } finally {
      taken.close();
    }
  });
});
