// `headroom serve` on a configuration file: a change to the file's contents is reloaded without a
// signal (a Kubernetes ConfigMap edit sends none), an invalid one is refused and the running
// configuration kept, and SIGHUP's reload reads the file the same way.

import { writeFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { MemoryLogger } from "../src/log.js";
import { serveUntilSignalled, startServing, type Serving } from "../src/serve.js";
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

  it("a SIGHUP while starting is held and reloads once serving, instead of ending the process", async () => {
    const file = configFile.write(servedConfig(300));
    const logger = new MemoryLogger();
    const hupBefore = process.listeners("SIGHUP");
    const termBefore = process.listeners("SIGTERM");
    const done = serveUntilSignalled({ configFile: file, port: 0, out: { write: () => true }, logger, watchMs: 0 });
    // Still starting: a listener holds the signal (none would let its default action end the process).
    const early = process.listeners("SIGHUP").filter((l) => !hupBefore.includes(l));
    expect(early).toHaveLength(1);
    writeFileSync(file, servedConfig(456));
    (early[0] as () => void)();
    await expect.poll(() => logger.lines.some((l) => l.message === "configuration reloaded"), { timeout: 10_000 }).toBe(true);
    // Stopped as SIGTERM would stop it (the listener itself: a real signal would reach the test runner too).
    const [onTerm] = process.listeners("SIGTERM").filter((l) => !termBefore.includes(l));
    (onTerm as () => void)();
    expect(await done).toBe(0);
    expect(process.listeners("SIGHUP")).toEqual(hupBefore);
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

describe("serve: the startup banner", () => {
  const started = async (configText: string | undefined) => {
    let out = "";
    const file = configText === undefined ? undefined : configFile.write(configText);
    serving = await startServing({ configFile: file, host: "127.0.0.1", port: 0, out: { write: (s: string) => (out += s) }, logger: new MemoryLogger(), watchMs: 0 });
    return out;
  };

  it("builds its pick and gateway examples from the configured levels: with only `high`, the printed gateway pick is not UNKNOWN_LEVEL", async () => {
    const out = await started(`pools:\n  - sloLevel: high\n    pods:\n      - { address: "10.0.0.1:8000", role: both }\nworkers: { threads: 0 }\n`);
    expect(out).toContain(`'{"sloLevel":"high","inputTokens":1500,"maxTokens":200}'`);
    expect(out).toContain("-H 'x-slo-level: high' -H 'x-prompt-tokens: 800'");
    expect(out).not.toContain("medium");
    const [, url, level] = /gateway: +curl -si (\S+) -H 'x-slo-level: (\S+)'/.exec(out)!;
    const r = await fetch(url, { headers: { "x-slo-level": level, "x-prompt-tokens": "800" } });
    expect(r.headers.get("x-headroom-error-code")).not.toBe("UNKNOWN_LEVEL");
    expect(r.status).not.toBe(400);
  });

  it("the demo's completion carries x-request-id, as the README's quick start sends it", async () => {
    const out = await started(undefined);
    expect(out).toContain("-H 'x-slo-level: medium'");
    expect(out).toMatch(/^ {4}curl -s http:\/\/127\.0\.0\.1:\d+\/v1\/completions -H 'x-prefiller-host-port: 127\.0\.0\.1:\d+' -H 'x-request-id: REQUEST_ID' -H 'content-type: application\/json' -d '\{"prompt":"Hello","max_tokens":16\}'$/m);
  });
});
