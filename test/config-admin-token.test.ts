// The admin token from the environment: HEADROOM_ADMIN_TOKEN, when set, is server.adminToken (a
// Kubernetes Secret reaches the server this way); empty or invalid is a problem naming the variable,
// never a server without a token; the value is never shown.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { ADMIN_TOKEN_ENV, loadConfigFile, parseConfig } from "../src/config/load.js";
import { ConfigError } from "../src/errors.js";
import { problemsOf } from "./fixtures/config.js";

const ENV_TOKEN = "env-token-0123456789abcdef";
const FILE_TOKEN = "file-token-0123456789abcdef";
const withFileToken = `server: { adminToken: "${FILE_TOKEN}" }\n`;

describe("HEADROOM_ADMIN_TOKEN", () => {
  test("is the variable's name", () => {
    expect(ADMIN_TOKEN_ENV).toBe("HEADROOM_ADMIN_TOKEN");
  });

  test("set, it is the admin token of a file without one", () => {
    const { config, warnings } = parseConfig("", undefined, { [ADMIN_TOKEN_ENV]: ENV_TOKEN });
    expect(config.server.adminToken).toBe(ENV_TOKEN);
    expect(warnings).toEqual([]);
  });

  test("set, it wins over the file's token, with a warning that shows neither", () => {
    const { config, warnings } = parseConfig(withFileToken, undefined, { [ADMIN_TOKEN_ENV]: ENV_TOKEN });
    expect(config.server.adminToken).toBe(ENV_TOKEN);
    expect(warnings).toEqual(["server.adminToken: HEADROOM_ADMIN_TOKEN is set and replaces the file's token, which is ignored"]);
  });

  test("unset, the file's token stands, and a file without one has none", () => {
    expect(parseConfig(withFileToken, undefined, {}).config.server.adminToken).toBe(FILE_TOKEN);
    expect(parseConfig("", undefined, {}).config.server.adminToken).toBeUndefined();
  });

  test("without an environment to read (tests, validate), the variable is not read", () => {
    expect(parseConfig(withFileToken).config.server.adminToken).toBe(FILE_TOKEN);
  });

  test("the whitespace around it is not part of it (a Secret made from a file `echo` wrote ends in a line break)", () => {
    expect(parseConfig("", undefined, { [ADMIN_TOKEN_ENV]: `${ENV_TOKEN}\n` }).config.server.adminToken).toBe(ENV_TOKEN);
    expect(parseConfig("", undefined, { [ADMIN_TOKEN_ENV]: `  ${ENV_TOKEN}\r\n` }).config.server.adminToken).toBe(ENV_TOKEN);
  });

  test.each([
    ["empty", "", "an empty value"],
    ["a space", " ", "only whitespace (1 characters)"],
    ["a line break", "\n", "only whitespace (1 characters)"],
    ["spaces and tabs", " \t  ", "only whitespace (4 characters)"],
  ])("%s is a problem naming the variable, not a server without a token", (_name, value, got) => {
    for (const text of ["", withFileToken]) {
      expect(problemsOf(text, { [ADMIN_TOKEN_ENV]: value })).toEqual([
        `HEADROOM_ADMIN_TOKEN: must be a token of at least 16 characters when set (unset, server.adminToken applies), got ${got}`,
      ]);
    }
  });

  test.each([
    ["too short", "short-token"],
    ["a space inside", "a token with a space"],
    ["a line break inside", "two-lines-of\ntoken-text"],
    ["a control character", "a-sixteen-char\u0007token"],
  ])("%s is a problem naming the variable and the rule, never the value", (_name, value) => {
    const problems = problemsOf(withFileToken, { [ADMIN_TOKEN_ENV]: value });
    expect(problems).toEqual([
      `HEADROOM_ADMIN_TOKEN: must be a string of at least 16 characters, without whitespace or control characters, got a secret of ${value.length} characters`,
    ]);
    expect(problems.join("\n")).not.toContain(value);
    expect(problems.join("\n")).not.toContain(FILE_TOKEN);
  });

  test("its problem is listed with the file's, in one error", () => {
    const problems = problemsOf("optimizer: { sloBufferFactor: 1.5 }\n", { [ADMIN_TOKEN_ENV]: "" });
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^HEADROOM_ADMIN_TOKEN: /);
    expect(problems[1]).toBe("optimizer.sloBufferFactor: must be a number > 0 and <= 1, got 1.5");
  });

  test("a valid variable does not excuse an invalid token in the file", () => {
    const problems = problemsOf(`server: { adminToken: "short" }\n`, { [ADMIN_TOKEN_ENV]: ENV_TOKEN });
    expect(problems).toEqual(["server.adminToken: must be a string of at least 16 characters, without whitespace or control characters, got a secret of 5 characters"]);
    expect(problems.join("\n")).not.toContain(ENV_TOKEN);
  });

  test("loadConfigFile reads it as parseConfig does", () => {
    const dir = mkdtempSync(join(tmpdir(), "headroom-admin-token-"));
    try {
      const file = join(dir, "headroom.yaml");
      writeFileSync(file, withFileToken);
      expect(loadConfigFile(file, { [ADMIN_TOKEN_ENV]: ENV_TOKEN }).config.server.adminToken).toBe(ENV_TOKEN);
      expect(loadConfigFile(file).config.server.adminToken).toBe(FILE_TOKEN);
      expect(() => loadConfigFile(file, { [ADMIN_TOKEN_ENV]: " " })).toThrow(ConfigError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
