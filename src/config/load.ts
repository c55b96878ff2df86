// Reading a configuration: YAML text -> plain data -> schema -> a frozen HeadroomConfig, or a ConfigError
// listing every problem, one line each, naming the field and the value found.

import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { parseDocument } from "yaml";
import type { z } from "zod";
import { ConfigError, shortened, withoutUrlCredentials } from "../errors.js";
import { fromEndpointPickerConfig } from "./epp.js";
import { AdminTokenSchema, ConfigSchema, deepFreeze, type HeadroomConfig } from "./schema.js";

/**
 * The environment variable whose value, when set, is `server.adminToken`: a Kubernetes Secret reaches
 * the server this way (deploy/k8s/base/deployment.yaml), where a ConfigMap is no place for a token.
 */
export const ADMIN_TOKEN_ENV = "HEADROOM_ADMIN_TOKEN";

export type Environment = Readonly<Record<string, string | undefined>>;

export interface LoadedConfig {
  config: HeadroomConfig;
  /** Things that were read but change nothing (fields of a seed EndpointPickerConfig, YAML notices). */
  warnings: string[];
}

/**
 * Parses and validates one configuration document: a headroom configuration, or a seed-shaped
 * `EndpointPickerConfig` (recognised by its `kind`). Empty text or a missing section means defaults.
 * With `source`, relative `predictors.profiles` paths resolve against the file's directory. With `env`,
 * HEADROOM_ADMIN_TOKEN, when set, is the admin token (see adminTokenFrom); without it, nothing is read
 * from the environment.
 */
export function parseConfig(text: string, source?: string, env?: Environment): LoadedConfig {
  const data = parseYaml(text);
  const warnings = data.warnings;
  let input: unknown = data.value ?? {};
  let rename = (path: string) => path;
  const problems: string[] = [];
  const envToken = env === undefined ? { problems: [] } : adminTokenFrom(env);
  problems.push(...envToken.problems);

  if (isPlainObject(input) && "kind" in input) {
    const epp = fromEndpointPickerConfig(input);
    input = epp.input;
    rename = epp.rename;
    warnings.push(...epp.warnings);
    problems.push(...epp.problems);
  }

  const result = ConfigSchema.safeParse(input, { reportInput: true });
  if (!result.success) problems.push(...result.error.issues.flatMap((issue) => describeIssue(issue, input, rename)));
  if (problems.length > 0 || !result.success) throw new ConfigError([...new Set(problems)]);

  const config = result.data;
  if (envToken.token !== undefined) {
    if (config.server.adminToken !== undefined) {
      warnings.push(`server.adminToken: ${ADMIN_TOKEN_ENV} is set and replaces the file's token, which is ignored`);
    }
    config.server.adminToken = envToken.token;
  }
  if (source !== undefined) {
    const base = dirname(source);
    for (const [name, csvPath] of Object.entries(config.predictors.profiles)) {
      if (!isAbsolute(csvPath)) config.predictors.profiles[name] = resolve(base, csvPath);
    }
  }
  deepFreeze(config);
  return { config, warnings };
}

/**
 * HEADROOM_ADMIN_TOKEN's token, or the problem with it. Unset: no token (the file's stands). Set, it
 * must be a token by server.adminToken's rule once the whitespace around it is removed (a Secret made
 * from a file written by `echo` ends in a line break); empty or only whitespace is a problem, not a
 * server without a token. The value is never shown, only its length.
 */
export function adminTokenFrom(env: Environment): { token?: string; problems: string[] } {
  const value = env[ADMIN_TOKEN_ENV];
  if (value === undefined) return { problems: [] };
  const token = value.trim();
  if (token === "") {
    const got = value === "" ? "an empty value" : `only whitespace (${value.length} characters)`;
    return { problems: [`${ADMIN_TOKEN_ENV}: must be a token of at least 16 characters when set (unset, server.adminToken applies), got ${got}`] };
  }
  const result = AdminTokenSchema.safeParse(token);
  if (result.success) return { token, problems: [] };
  const rules = new Set(result.error.issues.map((issue) => issue.message));
  return { problems: [...rules].map((rule) => `${ADMIN_TOKEN_ENV}: ${rule}, got a secret of ${token.length} characters`) };
}

/**
 * Reads and validates a configuration file (with `env`, as parseConfig reads it); an unreadable file is
 * a ConfigError with code CONFIG_UNREADABLE.
 */
export function loadConfigFile(path: string, env?: Environment): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ConfigError([`${path}: cannot read the file (${reason})`], "CONFIG_UNREADABLE");
  }
  return parseConfig(text, path, env);
}

let defaults: HeadroomConfig | undefined;

/** The configuration of an empty file (shared and frozen). */
export function defaultConfig(): HeadroomConfig {
  defaults ??= parseConfig("").config;
  return defaults;
}

function parseYaml(text: string): { value: unknown; warnings: string[] } {
  const doc = parseDocument(text);
  const where = (e: { message: string; linePos?: [{ line: number; col: number }, ...unknown[]] }) => {
    const pos = e.linePos?.[0];
    const message = e.message.replace(/ at line \d+, column \d+:[\s\S]*$/, "");
    return pos ? `line ${pos.line}, column ${pos.col}: ${message}` : message;
  };
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) =>
        e.code === "MULTIPLE_DOCS"
          ? where({ ...e, message: "a configuration is one YAML document, found a second one" })
          : where(e),
      ),
    );
  }
  let value: unknown;
  try {
    // Aliases resolve here: one that names no anchor, or too many of them (an alias bomb), throws.
    value = doc.toJS();
  } catch (err) {
    throw new ConfigError([`yaml: ${(err as Error).message}`]);
  }
  return { value, warnings: doc.warnings.map((w) => `yaml: ${where(w)}`) };
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

const TOP_LEVEL = "(top level)";

function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out === "" ? TOP_LEVEL : out;
}

/**
 * Keys whose values are secrets, however spelled (a misspelled adminToken is an unknown key, shown)
 * and however deep in a value that is shown.
 */
const SECRET_KEY = /admin|^token$|secret|password|credential|authorization|api[-_]?key/i;
/**
 * Webhook headers carry credentials (authorization, API keys) whatever their names, and so may any
 * key under planners.webhook but its URL and timeout (a header written one level too high, a
 * misspelled `headers`).
 */
const SECRET_PATH = /^planners\.webhook(\.headers(\.|$)|\.(?!url$|timeoutMs$)[^.]+$|$)/;

/** The value as the user wrote it, short; never a secret, nor a URL's password. */
function show(value: unknown, path: string): string {
  if (value === undefined) return "nothing";
  if (SECRET_KEY.test(path.slice(path.lastIndexOf(".") + 1)) || SECRET_PATH.test(path)) {
    return typeof value === "string" ? `a secret of ${value.length} characters` : "a secret";
  }
  if (typeof value === "string") return withoutUrlCredentials(JSON.stringify(value));
  if (typeof value !== "object" || value === null) return String(value);
  return shortened(withoutUrlCredentials(JSON.stringify(value, (key, v: unknown) => (SECRET_KEY.test(key) ? "(a secret)" : v))));
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let node = root;
  for (const key of path) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

/**
 * What a schema refused in `input` (a value given at `at`, such as "pods[2]"), each problem as the
 * configuration's are written: the path, what is wrong, the value as given (never a secret).
 */
export function schemaProblems(error: z.ZodError, input: unknown, at: string): string[] {
  const under = (path: string) => (path === TOP_LEVEL ? at : path.startsWith("[") ? `${at}${path}` : `${at}.${path}`);
  return error.issues.flatMap((issue) => describeIssue(issue, input, under));
}

function describeIssue(issue: z.core.$ZodIssue, input: unknown, rename: (path: string) => string): string[] {
  if (issue.code === "unrecognized_keys") {
    const holder = isPlainObject(issue.input) ? issue.input : {};
    return issue.keys.map((key) => {
      const path = rename(formatPath([...issue.path, key]));
      return `${path}: unknown key, got ${show(holder[key], path)}`;
    });
  }
  const path = rename(formatPath(issue.path));
  // A mapping's key is at fault (a webhook header's name): the key is shown, not its value.
  if (issue.code === "invalid_key") return [`${path}: ${issue.issues[0]?.message ?? issue.message}, got ${JSON.stringify(String(issue.input))}`];
  const asWritten = issue.code === "custom" && issue.params?.asWritten === true;
  const value = asWritten ? (valueAt(input, issue.path) ?? issue.input) : issue.input;
  return [`${path}: ${issue.message}, got ${show(value, path)}`];
}
