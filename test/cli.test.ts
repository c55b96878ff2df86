// The `headroom` command: dispatch, help, and `validate`, driven through runCli with captured output.

import { once } from "node:events";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import { runCaptured as run } from "./fixtures/cli-run.js";
import { POOLS } from "./fixtures/server-harness.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const example = join(root, "deploy/config/headroom.yaml");
const eppExample = join(root, "deploy/config/pd-slo-epp-config.yaml");
const invalid = join(root, "test/fixtures/config/invalid.yaml");

const COMMANDS = ["serve", "validate", "sim", "bench", "pod-sim", "client"];

describe("dispatch and help", () => {
  test("--help lists every command", async () => {
    const { code, stdout, stderr } = await run("--help");
    expect(code).toBe(0);
    expect(stderr).toBe("");
    for (const command of COMMANDS) expect(stdout).toMatch(new RegExp(`^  ${command} `, "m"));
  });

  test("no command is a usage error", async () => {
    const { code, stderr } = await run();
    expect(code).toBe(2);
    expect(stderr).toContain("Usage: headroom <command>");
  });

  test("an unknown command is a usage error", async () => {
    const { code, stderr } = await run("deploy");
    expect(code).toBe(2);
    expect(stderr).toContain('unknown command "deploy"');
  });

  test.each(COMMANDS)("%s --help prints its usage", async (command) => {
    const { code, stdout } = await run(command, "--help");
    expect(code).toBe(0);
    expect(stdout).toContain(`Usage: headroom ${command}`);
  });

  test("bench runs a named benchmark's built script, passing its options and output on; an unknown name is a usage error", async () => {
    const { code, stdout } = await run("bench", "planner-eval", "--quick");
    expect(code).toBe(0);
    const lines = stdout.trim().split("\n").map((line) => JSON.parse(line) as { bench: string });
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.every((l) => l.bench === "planner-eval")).toBe(true);
    for (const args of [[], ["nope"]]) {
      const refused = await run("bench", ...args);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain("Benchmarks: kernel, predictors, rpc");
    }
  });

  test("sim runs the simulator's sweep with its options", async () => {
    const dir = mkdtempSync(join(tmpdir(), "headroom-sim-"));
    try {
      const { code, stdout } = await run("sim", "--quick", "--scenarios", "default", "--policies", "headroom", "--out", dir);
      expect(code).toBe(0);
      const lines = stdout.trim().split("\n").map((line) => JSON.parse(line) as { scenario?: string; policy?: string });
      expect(lines.length).toBeGreaterThan(0);
      expect(lines.every((l) => l.scenario === "default" && l.policy === "headroom")).toBe(true);
      expect(readdirSync(dir).length).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("serve", () => {
  test("bad options and an invalid configuration are refused before anything starts", async () => {
    expect((await run("serve", "--port", "http")).code).toBe(2);
    expect((await run("serve", "--nope")).code).toBe(2);
    const { code, stderr } = await run("serve", "--config", invalid);
    expect(code).toBe(1);
    expect(stderr).toContain("optimizer.sloBufferFactor: must be a number > 0 and <= 1, got 1.5");
  });

  // `--host="$HOST"` with HOST unset listened on every interface (the file said 127.0.0.1), and
  // `--port="$PORT"` on a random port; Number() also read " ", "0x1f90" and "8e3" as ports.
  test.each([[["--host="]], [["--host", " "]], [["--port="]], [["--port", " "]], [["--port", "0x1f90"]], [["--port", "8e3"]], [["--port=-0"]]])(
    "serve %j is a usage error, not a server listening elsewhere",
    async (args) => {
      const { code, stderr } = await run("serve", "--config", invalid, ...args);
      expect(code).toBe(2);
      expect(stderr).toMatch(/^headroom serve: --(host|port) must be /);
    },
  );

  test.each([[["--config", "b.yaml"]], [["-c", "b.yaml"]], [["--port", "1", "-p", "2"]], [["--host", "a", "--host=b"]]])(
    "serve with %j again is a usage error, not the last one served",
    async (args) => {
      const { code, stderr } = await run("serve", "--config", invalid, ...args);
      expect(code).toBe(2);
      expect(stderr).toMatch(/^headroom serve: --(config|port|host) given more than once/);
    },
  );

  test("pod-sim --host= is a usage error, not simulated pods on every interface", async () => {
    const { code, stderr } = await run("pod-sim", "--host=", "--pod", "p:prefill");
    expect(code).toBe(2);
    expect(stderr).toMatch(/^headroom pod-sim: --host must be /);
  });

  test("a port in use is one line and exit 1, not a stack trace", async () => {
    const taken = createServer().listen(0, "127.0.0.1");
    await once(taken, "listening");
    const { port } = taken.address() as AddressInfo;
    const dir = mkdtempSync(join(tmpdir(), "headroom-cli-"));
    const file = join(dir, "headroom.yaml");
    writeFileSync(file, `${POOLS}\nserver: { host: 127.0.0.1 }\n`);
    try {
      const { code, stderr } = await run("serve", "--config", file, "--port", String(port));
      expect(code).toBe(1);
      expect(stderr.trim().split("\n").at(-1)).toBe(`headroom serve: cannot listen on 127.0.0.1:${port} (in use, or not an address of this host)`);
      expect(stderr).not.toMatch(/\n\s+at /);
    } finally {
      taken.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("validate", () => {
  test.each([example, join(root, "deploy/config/global-scheduler-demo.yaml"), join(root, "deploy/config/demo.yaml")])("a valid file prints ok: %s", async (file) => {
    const { code, stdout, stderr } = await run("validate", "--config", file);
    expect(code).toBe(0);
    expect(stdout).toBe(`ok: ${file}\n`);
    expect(stderr).toBe("");
  });

  test("an EndpointPickerConfig prints ok and its warnings", async () => {
    const { code, stdout } = await run("validate", "-c", eppExample);
    expect(code).toBe(0);
    expect(stdout.startsWith(`ok: ${eppExample}\n`)).toBe(true);
    expect(stdout).toContain("  warning: plugins[0] (prefill-filter): ignored");
  });

  test("an invalid file prints its problems and exits 1", async () => {
    const { code, stdout, stderr } = await run("validate", "--config", invalid);
    expect(code).toBe(1);
    expect(stdout).toBe("");
    expect(stderr).toBe(
      `invalid: ${invalid}\n` +
        "  - optimizer.sloBufferFactor: must be a number > 0 and <= 1, got 1.5\n" +
        "  - optimizer.ttftWieght: unknown key, got 0.7\n",
    );
  });

  test("several files: each is reported, exit 1 if any is invalid", async () => {
    const { code, stdout, stderr } = await run("validate", "--config", example, "--config", invalid);
    expect(code).toBe(1);
    expect(stdout).toBe(`ok: ${example}\n`);
    expect(stderr).toContain(`invalid: ${invalid}`);
  });

  test("what serve checks beyond the schema: a profile that cannot be read is invalid; remote URLs missing from this environment, a warning", async () => {
    const dir = mkdtempSync(join(tmpdir(), "headroom-validate-"));
    try {
      const profile = join(dir, "profile.yaml");
      writeFileSync(profile, `${POOLS}\npredictors: { profiles: { mine: ${join(dir, "nowhere.csv")} }, defaultProfile: mine }\n`);
      const unreadable = await run("validate", "--config", profile);
      expect(unreadable.code).toBe(1);
      expect(unreadable.stderr).toContain(`predictors.profiles.mine: cannot read ${join(dir, "nowhere.csv")}`);
      const remote = join(dir, "remote.yaml");
      writeFileSync(remote, `${POOLS}\npredictors: { prefillTtft: remote }\n`);
      const missing = await run("validate", "--config", remote);
      expect(missing.code).toBe(0);
      expect(missing.stdout).toMatch(/^ok: .*\n  warning: serve refuses this configuration in an environment like this one: \S+ must be set/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("an admin token in this environment that serve would refuse is a warning naming the variable, never its value", async () => {
    const before = process.env.HEADROOM_ADMIN_TOKEN;
    try {
      process.env.HEADROOM_ADMIN_TOKEN = "short token";
      const bad = await run("validate", "--config", example);
      expect(bad.code).toBe(0);
      expect(bad.stdout).toMatch(/^ok: .*\n  warning: serve refuses this configuration in an environment like this one: HEADROOM_ADMIN_TOKEN: /);
      expect(bad.stdout).not.toContain("short token");
      process.env.HEADROOM_ADMIN_TOKEN = "a-token-of-enough-characters";
      expect(await run("validate", "--config", example)).toMatchObject({ code: 0, stdout: `ok: ${example}\n` });
    } finally {
      if (before === undefined) delete process.env.HEADROOM_ADMIN_TOKEN;
      else process.env.HEADROOM_ADMIN_TOKEN = before;
    }
  });

  test("a missing file is reported, exit 1", async () => {
    const { code, stderr } = await run("validate", "--config", "/nonexistent/headroom.yaml");
    expect(code).toBe(1);
    expect(stderr).toContain("/nonexistent/headroom.yaml: cannot read the file (ENOENT)");
  });

  test.each([[[]], [["--verbose"]], [["extra.yaml"]]])("usage errors %j exit 2", async (args) => {
    const { code, stderr } = await run("validate", ...args);
    expect(code).toBe(2);
    expect(stderr).toContain("Usage: headroom validate");
  });
});
