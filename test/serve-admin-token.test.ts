// `headroom serve` with HEADROOM_ADMIN_TOKEN: a real server on loopback refuses PUT and DELETE /v1/pods
// without the variable's bearer token and takes them with it, a reload keeps it, a file's token gives
// way to it, an empty or invalid one stops the start, and the token never reaches a log line or a
// problem line. Once in process (startServing with its environment), once as the real command. Without
// any token, a server listening beyond loopback warns that the routes are open.

import { spawn } from "node:child_process";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { ConfigError } from "../src/errors.js";
import { MemoryLogger } from "../src/log.js";
import { startServing, type Serving } from "../src/serve.js";
import { ConfigFile, postJson, servedConfig } from "./fixtures/server-harness.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const TOKEN = "env-admin-token-0123456789";
const FILE_TOKEN = "file-admin-token-0123456789";
const POD = { address: "10.0.2.1:8000", pool: "low", role: "both" };

let serving: Serving | undefined;
const configFile = new ConfigFile("headroom-admin-token-");
afterEach(async () => {
  await serving?.close();
  serving = undefined;
  configFile.remove();
});

const writeConfig = (text: string) => configFile.write(text);

async function serve(text: string, env: Record<string, string>) {
  const file = writeConfig(text);
  const logger = new MemoryLogger();
  let out = "";
  serving = await startServing({ configFile: file, port: 0, out: { write: (s: string) => (out += s) }, logger, watchMs: 0, env });
  return { file, logger, serving, url: `http://127.0.0.1:${serving.port}`, output: () => out };
}

/** PUT /v1/pods and DELETE /v1/pods/{address}'s statuses with `authorization` (none when undefined). */
async function adminStatuses(url: string, authorization?: string): Promise<{ put: number; del: number }> {
  const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
  const put = await postJson(`${url}/v1/pods`, POD, headers, "PUT");
  const del = await fetch(`${url}/v1/pods/10.0.2.1%3A8000`, { method: "DELETE", headers });
  await del.arrayBuffer();
  return { put: put.status, del: del.status };
}

describe("serve with HEADROOM_ADMIN_TOKEN", () => {
  it("refuses PUT and DELETE /v1/pods without the variable's bearer token (401) and takes them with it", async () => {
    const { url } = await serve(servedConfig(300), { HEADROOM_ADMIN_TOKEN: TOKEN });
    expect(serving!.config.server.adminToken).toBe(TOKEN);
    expect(await adminStatuses(url)).toEqual({ put: 401, del: 401 });
    expect(await adminStatuses(url, "Bearer wrong-token-0123456789")).toEqual({ put: 401, del: 401 });
    expect(await adminStatuses(url, `Bearer ${TOKEN}`)).toEqual({ put: 200, del: 200 });
  });

  it("a reload (SIGHUP's) keeps the token: the file's change applies, the routes stay closed", async () => {
    const { file, url, serving: s } = await serve(servedConfig(300), { HEADROOM_ADMIN_TOKEN: TOKEN });
    writeFileSync(file, servedConfig(123));
    // Had the reload not read the variable, the server section would differ and need a restart.
    expect(s.reload()).toEqual([]);
    expect(s.engine.route("high").targets.ttftMs).toBe(123);
    expect(await adminStatuses(url)).toEqual({ put: 401, del: 401 });
    expect(await adminStatuses(url, `Bearer ${TOKEN}`)).toEqual({ put: 200, del: 200 });
  });

  it("wins over the file's token, with a warning; neither token is in a log line or the banner", async () => {
    const { file, url, logger, output, serving: s } = await serve(servedConfig(300, `host: 127.0.0.1, port: 0, adminToken: "${FILE_TOKEN}"`), { HEADROOM_ADMIN_TOKEN: TOKEN });
    expect(await adminStatuses(url, `Bearer ${FILE_TOKEN}`)).toEqual({ put: 401, del: 401 });
    expect(await adminStatuses(url, `Bearer ${TOKEN}`)).toEqual({ put: 200, del: 200 });
    writeFileSync(file, servedConfig(123, `host: 127.0.0.1, port: 0, adminToken: "${FILE_TOKEN}"`));
    expect(s.reload()).toEqual([]);
    const warnings = logger.lines.filter((l) => l.level === "warn").map((l) => l.message);
    // At the start and at the reload.
    expect(warnings.filter((w) => w === "server.adminToken: HEADROOM_ADMIN_TOKEN is set and replaces the file's token, which is ignored")).toHaveLength(2);
    const written = JSON.stringify(logger.lines) + output();
    expect(written).not.toContain(TOKEN);
    expect(written).not.toContain(FILE_TOKEN);
  });

  it.each([
    ["empty", ""],
    ["only whitespace", " \n"],
    ["too short", "short-secret"],
    ["with a space inside", "an admin token with spaces"],
  ])("%s, it stops the start with a problem naming it, not serving the routes open; the value is not shown", async (_name, value) => {
    const file = writeConfig(servedConfig(300));
    const logger = new MemoryLogger();
    const started = startServing({ configFile: file, port: 0, out: { write: () => true }, logger, watchMs: 0, env: { HEADROOM_ADMIN_TOKEN: value } });
    const err = await started.then(
      (s) => {
        serving = s;
        throw new Error("the server started");
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^HEADROOM_ADMIN_TOKEN: must be /);
    if (value.trim() !== "") expect(problems[0]).not.toContain(value);
  });

  it("without the variable, a change to the file's token still needs a restart, and the refusal does not show it", async () => {
    const { file, serving: s } = await serve(servedConfig(300, `host: 127.0.0.1, port: 0, adminToken: "${FILE_TOKEN}"`), {});
    writeFileSync(file, servedConfig(300, `host: 127.0.0.1, port: 0, adminToken: "${FILE_TOKEN}-rotated"`));
    const problems = s.reload();
    expect(problems).toEqual(["these changes need a restart: server"]);
    expect(problems.join("\n")).not.toContain(FILE_TOKEN);
  });
});

describe("serve without an admin token", () => {
  const OPEN = /^listening on (\S+) without an admin token: anyone who reaches port \d+ can PUT \/v1\/pods and DELETE \/v1\/pods\/\{address\}, and so choose where picks go; set HEADROOM_ADMIN_TOKEN or server.adminToken$/;
  const openWarnings = (logger: MemoryLogger) => logger.lines.filter((l) => l.level === "warn" && OPEN.test(l.message));

  it("warns at start when it listens beyond loopback (the shipped Kubernetes configuration's 0.0.0.0)", async () => {
    const { logger } = await serve(servedConfig(300, "host: 0.0.0.0, port: 0"), {});
    expect(openWarnings(logger).map((l) => OPEN.exec(l.message)![1])).toEqual(["0.0.0.0"]);
  });

  it("says nothing on loopback, or with the variable's token", async () => {
    const loopback = await serve(servedConfig(300), {});
    expect(openWarnings(loopback.logger)).toEqual([]);
    await serving!.close();
    serving = undefined;
    const withToken = await serve(servedConfig(300, "host: 0.0.0.0, port: 0"), { HEADROOM_ADMIN_TOKEN: TOKEN });
    expect(openWarnings(withToken.logger)).toEqual([]);
  });
});

/** Runs `headroom serve` as a process, with `env` added to this one's environment. */
function startCommand(file: string, env: Record<string, string>) {
  const child = spawn(process.execPath, [join(root, "dist/src/cli.js"), "serve", "--config", file, "--port", "0"], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
  const exited = once(child, "exit").then(([code]) => code as number | null);
  return { child, stderr: () => stderr, exited };
}

describe("headroom serve, the command, with HEADROOM_ADMIN_TOKEN in its environment", () => {
  it("closes the pods routes to all but the token's bearer, across SIGHUP, and never writes the token", async () => {
    const file = writeConfig(servedConfig(300));
    const run = startCommand(file, { HEADROOM_ADMIN_TOKEN: TOKEN });
    try {
      await expect.poll(run.stderr, { timeout: 15_000 }).toMatch(/headroom serving .* on http:\/\/127\.0\.0\.1:\d+/);
      const url = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(run.stderr())![1]!;
      expect(await adminStatuses(url)).toEqual({ put: 401, del: 401 });
      expect(await adminStatuses(url, `Bearer ${TOKEN}`)).toEqual({ put: 200, del: 200 });
      writeFileSync(file, servedConfig(123));
      run.child.kill("SIGHUP");
      await expect.poll(run.stderr, { timeout: 10_000 }).toContain("configuration reloaded");
      expect(await adminStatuses(url)).toEqual({ put: 401, del: 401 });
      expect(await adminStatuses(url, `Bearer ${TOKEN}`)).toEqual({ put: 200, del: 200 });
      run.child.kill("SIGTERM");
      expect(await run.exited).toBe(0);
      expect(run.stderr()).not.toContain(TOKEN);
    } finally {
      run.child.kill("SIGKILL");
    }
  }, 30_000);

  it("an empty HEADROOM_ADMIN_TOKEN (a Secret with an empty key) exits 1 naming it, without listening", async () => {
    const file = writeConfig(servedConfig(300));
    const run = startCommand(file, { HEADROOM_ADMIN_TOKEN: "" });
    try {
      expect(await run.exited).toBe(1);
      expect(run.stderr()).toContain("  - HEADROOM_ADMIN_TOKEN: must be a token of at least 16 characters when set (unset, server.adminToken applies), got an empty value\n");
      expect(run.stderr()).not.toContain("headroom serving");
    } finally {
      run.child.kill("SIGKILL");
    }
  }, 30_000);
});
