// Reads the seed's EndpointPickerConfig (a gateway EPP plugin file) as a headroom configuration: the
// parameters of `pd-slo-pair-optimizer` and `pd-slo-profile-handler` become optimizer options, and
// everything headroom does not use is named in a warning.

export const EPP_KIND = "EndpointPickerConfig";
export const PAIR_OPTIMIZER = "pd-slo-pair-optimizer";
export const PROFILE_HANDLER = "pd-slo-profile-handler";

/**
 * The seed's `selectionStrategy` values and headroom's `headroomStrategy`. The seed's
 * `weighted_random` draws among positive pairs with weight blended - min + 1, which is `most`;
 * `best_headroom` takes the arg-max, which is `best`. headroom's own names are accepted as well.
 */
export const SELECTION_STRATEGIES: Readonly<Record<string, "most" | "least" | "best">> = Object.freeze({
  weighted_random: "most",
  best_headroom: "best",
  most: "most",
  least: "least",
  best: "best",
});

const OPTIMIZER_NUMBERS = ["ttftWeight", "tpotWeight", "transferOverheadMs", "sloBufferFactor", "negativeHeadroomProb"];

const IGNORED_PLUGIN_REASONS: Record<string, string> = {
  "prefill-filter": "headroom takes prefill candidates from each pod's role",
  "decode-filter": "headroom takes decode candidates from each pod's role",
  "prefix-cache-scorer": "headroom takes the prefix hit from each request (prefixHit)",
  "max-score-picker": "headroom picks the pair itself",
  "queue-scorer": "headroom predicts queueing from pod metrics",
  "kv-cache-scorer": "headroom predicts KV admission from pod metrics",
};

export interface EppTranslation {
  /** A headroom configuration document (only the optimizer section), still to be validated. */
  input: { optimizer?: Record<string, unknown> };
  warnings: string[];
  /** Problems found in the EPP structure itself; schema problems come later, through `rename`. */
  problems: string[];
  /** Maps a headroom field path (`optimizer.sloBufferFactor`) to where the value came from in the file. */
  rename(path: string): string;
}

interface Plugin {
  at: string;
  type: string;
  parameters: Record<string, unknown>;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

const show = (v: unknown) => (v === undefined ? "nothing" : JSON.stringify(v));

export function fromEndpointPickerConfig(file: Record<string, unknown>): EppTranslation {
  const warnings: string[] = [];
  const problems: string[] = [];
  const origin = new Map<string, string>();
  const optimizer: Record<string, unknown> = {};

  if (file.kind !== EPP_KIND) {
    problems.push(`kind: must be ${EPP_KIND} (a headroom configuration has no kind), got ${show(file.kind)}`);
  }
  if (file.apiVersion !== undefined && typeof file.apiVersion !== "string") {
    problems.push(`apiVersion: must be a string, got ${show(file.apiVersion)}`);
  }
  for (const key of Object.keys(file)) {
    if (!["apiVersion", "kind", "plugins", "profileHandler", "schedulingProfiles"].includes(key)) {
      warnings.push(`${key}: ignored, not read by headroom`);
    }
  }

  const readPlugin = (raw: unknown, at: string): Plugin | undefined => {
    if (!isPlainObject(raw) || typeof raw.type !== "string" || raw.type === "") {
      problems.push(`${at}: must be a mapping {type, name, parameters} with a non-empty type, got ${show(raw)}`);
      return undefined;
    }
    for (const key of Object.keys(raw)) {
      if (!["type", "name", "parameters"].includes(key)) warnings.push(`${at}.${key}: ignored, not read by headroom`);
    }
    if (raw.name !== undefined && typeof raw.name !== "string") {
      problems.push(`${at}.name: must be a string, got ${show(raw.name)}`);
    }
    const parameters = raw.parameters ?? {};
    if (!isPlainObject(parameters)) {
      problems.push(`${at}.parameters: must be a mapping, got ${show(raw.parameters)}`);
      return undefined;
    }
    return { at, type: raw.type, parameters };
  };

  let pairOptimizer: Plugin | undefined;
  let profileHandler: Plugin | undefined;
  const adopt = (plugin: Plugin) => {
    if (plugin.type === PAIR_OPTIMIZER || plugin.type === PROFILE_HANDLER) {
      const first = plugin.type === PAIR_OPTIMIZER ? pairOptimizer : profileHandler;
      if (first) problems.push(`${plugin.at}: a second ${plugin.type} (${first.at} is the first)`);
      else if (plugin.type === PAIR_OPTIMIZER) pairOptimizer = plugin;
      else profileHandler = plugin;
      return;
    }
    const reason = IGNORED_PLUGIN_REASONS[plugin.type] ?? "not a headroom plugin";
    warnings.push(`${plugin.at} (${plugin.type}): ignored, ${reason}`);
  };

  if (file.plugins !== undefined && file.plugins !== null && !Array.isArray(file.plugins)) {
    problems.push(`plugins: must be a list of {type, name, parameters}, got ${show(file.plugins)}`);
  } else {
    ((file.plugins as unknown[] | null | undefined) ?? []).forEach((raw, i) => {
      const plugin = readPlugin(raw, `plugins[${i}]`);
      if (plugin) adopt(plugin);
    });
  }
  if (file.profileHandler !== undefined) {
    const plugin = readPlugin(file.profileHandler, "profileHandler");
    if (plugin) adopt(plugin);
  }

  const profileNames = Array.isArray(file.schedulingProfiles)
    ? file.schedulingProfiles.flatMap((p) => (isPlainObject(p) && typeof p.name === "string" ? [p.name] : []))
    : [];
  if (file.schedulingProfiles !== undefined) {
    warnings.push(
      "schedulingProfiles: ignored, headroom scores every (prefill, decode) pair itself and takes roles from pods[].role",
    );
  }

  const take = (plugin: Plugin, key: string, field: string) => {
    optimizer[field] = plugin.parameters[key];
    origin.set(`optimizer.${field}`, `${plugin.at}.parameters.${key}`);
  };

  if (pairOptimizer) {
    const p = pairOptimizer;
    for (const [key, value] of Object.entries(p.parameters)) {
      const at = `${p.at}.parameters.${key}`;
      if (OPTIMIZER_NUMBERS.includes(key)) take(p, key, key);
      else if (key === "selectionStrategy") {
        const strategy = typeof value === "string" ? SELECTION_STRATEGIES[value] : undefined;
        if (strategy === undefined) {
          problems.push(
            `${at}: must be one of weighted_random (headroom: most), best_headroom (best), most, least, best, got ${show(value)}`,
          );
        } else {
          optimizer.headroomStrategy = strategy;
          origin.set("optimizer.headroomStrategy", at);
        }
      } else warnings.push(`${at}: ignored, not a ${PAIR_OPTIMIZER} parameter`);
    }
  } else {
    warnings.push(`plugins: no ${PAIR_OPTIMIZER}, the optimizer defaults apply`);
  }

  if (profileHandler) {
    const p = profileHandler;
    for (const [key, value] of Object.entries(p.parameters)) {
      const at = `${p.at}.parameters.${key}`;
      if (key === "pdThreshold") take(p, key, "pdThreshold");
      else if (key === "transferOverheadMs") {
        if (optimizer.transferOverheadMs === undefined) take(p, key, "transferOverheadMs");
        else if (optimizer.transferOverheadMs !== value) {
          problems.push(
            `${at}: must equal ${origin.get("optimizer.transferOverheadMs")} (${show(optimizer.transferOverheadMs)}), got ${show(value)}`,
          );
        }
      } else if (key === "hashBlockSize") {
        if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
          problems.push(`${at}: must be an integer >= 1, got ${show(value)}`);
        } else {
          warnings.push(`${at}: read, no effect: headroom takes the prefix hit from each request (prefixHit)`);
        }
      } else if (key === "decodeProfile" || key === "prefillProfile") {
        if (typeof value !== "string" || value === "") {
          problems.push(`${at}: must be a non-empty string, got ${show(value)}`);
        } else if (file.schedulingProfiles !== undefined && !profileNames.includes(value)) {
          warnings.push(`${at}: ${show(value)} names no schedulingProfiles entry (${profileNames.join(", ")})`);
        } else {
          warnings.push(`${at}: read, no effect: headroom takes roles from pods[].role`);
        }
      } else warnings.push(`${at}: ignored, not read by headroom`);
    }
  }

  warnings.push("pools: an EndpointPickerConfig has none, the default pools apply (no pods until pushed or discovered)");

  return {
    input: Object.keys(optimizer).length > 0 ? { optimizer } : {},
    warnings,
    problems,
    rename: (path) => origin.get(path) ?? path,
  };
}
