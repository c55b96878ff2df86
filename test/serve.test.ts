// `headroom serve` on a configuration file: a change to the file's contents is reloaded without a
// signal (a Kubernetes ConfigMap edit sends none), an invalid one is refused and the running
// configuration kept, and SIGHUP's reload reads the file the same way.

import { writeFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { MemoryLogger } from "../src/log.js";
import { startServing, type Serving } from "../src/serve.js";
import { ConfigFile, servedConfig } from "./fixtures/server-harness.js";

let serving: Serving | undefined;
const configFile = new ConfigFile("headroom-serve-");
afterEach(async () => {
  await serving?.close();
  serving = undefined;
  configFile.remove();
});

async function serve(text: string, watchMs: number) {
  const file = configFile.write(text);
  const logger = new MemoryLogger();
  serving = await startServing({ configFile: file, port: 0, out: { write: () => true }, logger, watchMs });
  return { file, logger, serving };
}

describe("serve: configuration reload", () => {
  it("reloads a file whose contents change, and keeps the running configuration when the new one is invalid", async () => {
    const { file, logger, serving: s } = await serve(servedConfig(300), 20);
    expect(s.engine.route("high").targets.ttftMs).toBe(300);
    writeFileSync(file, servedConfig(123));
    await expect.poll(() => s.engine.route("high").targets.ttftMs, { timeout: 5000 }).toBe(123);
    writeFileSync(file, `${servedConfig(77)}optimizer: { sloBufferFactor: 1.5 }\n`);
    await expect.poll(() => logger.lines.filter((l) => l.level === "error").length, { timeout: 5000 }).toBe(1);
    const refused = logger.lines.find((l) => l.level === "error")!;
    expect(refused.message).toBe("configuration reload refused; the running configuration is kept");
    expect(refused.fields?.problems).toEqual(["optimizer.sloBufferFactor: must be a number > 0 and <= 1, got 1.5"]);
    expect(s.engine.route("high").targets.ttftMs).toBe(123);
    // A refused file is not retried until it changes again.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(logger.lines.filter((l) => l.message === "configuration reload refused; the running configuration is kept")).toHaveLength(1);
  });

  it("a reload logs the new file's warnings, as a start does (an ignored, misspelled parameter was silent)", async () => {
    const epp = (parameters: string) =>
      `kind: EndpointPickerConfig\nplugins:\n  - type: pd-slo-pair-optimizer\n    parameters: { ${parameters} }\n`;
    const { file, logger, serving: s } = await serve(epp("ttftWeight: 0.7"), 0);
    expect(s.engine.route("high").pool).toBe("high");
    writeFileSync(file, epp("ttftWeight: 0.7, tpotWieght: 0.5"));
    const before = logger.lines.length;
    expect(s.reload()).toEqual([]);
    expect(logger.lines.slice(before).filter((l) => l.level === "warn").map((l) => l.message)).toContain(
      "plugins[0].parameters.tpotWieght: ignored, not a pd-slo-pair-optimizer parameter",
    );
  });

  it("with watching off, only reload() (SIGHUP) reads the file", async () => {
    const { file, serving: s } = await serve(servedConfig(300), 0);
    writeFileSync(file, servedConfig(456));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(s.engine.route("high").targets.ttftMs).toBe(300);
    expect(s.reload()).toEqual([]);
    expect(s.engine.route("high").targets.ttftMs).toBe(456);
  });
});
