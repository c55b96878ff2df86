// The seed's EndpointPickerConfig read as a headroom configuration: what maps, what warns, what fails.

import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import { stringify } from "yaml";
import { SELECTION_STRATEGIES } from "../src/config/epp.js";
import { defaultConfig, loadConfigFile, parseConfig } from "../src/config/load.js";
import { problemsOf } from "./fixtures/config.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function epp(plugins: unknown[], extra: Record<string, unknown> = {}): string {
  return stringify({ apiVersion: "inference.networking.x-k8s.io/v1alpha1", kind: "EndpointPickerConfig", plugins, ...extra });
}

const optimizerPlugin = (parameters: Record<string, unknown>) => ({
  type: "pd-slo-pair-optimizer",
  name: "pd-slo-pair-optimizer",
  parameters,
});
const handlerPlugin = (parameters: Record<string, unknown>) => ({
  type: "pd-slo-profile-handler",
  name: "pd-slo-profile-handler",
  parameters,
});


describe("the shipped seed-shaped file", () => {
  test("maps the two plugins' parameters and warns about everything else", () => {
    const { config, warnings } = loadConfigFile(join(root, "deploy/config/pd-slo-epp-config.yaml"));
    expect(config.optimizer).toEqual({ ...defaultConfig().optimizer, pdThreshold: 5, headroomStrategy: "most" });
    expect({ ...config, optimizer: undefined }).toEqual({ ...defaultConfig(), optimizer: undefined });
    expect(warnings).toEqual([
      "plugins[0] (prefill-filter): ignored, headroom takes prefill candidates from each pod's role",
      "plugins[1] (decode-filter): ignored, headroom takes decode candidates from each pod's role",
      "plugins[2] (prefix-cache-scorer): ignored, headroom takes the prefix hit from each request (prefixHit)",
      "plugins[4] (max-score-picker): ignored, headroom picks the pair itself",
      "schedulingProfiles: ignored, headroom scores every (prefill, decode) pair itself and takes roles from pods[].role",
      "plugins[5].parameters.decodeProfile: read, no effect: headroom takes roles from pods[].role",
      "plugins[5].parameters.prefillProfile: read, no effect: headroom takes roles from pods[].role",
      "plugins[5].parameters.prefixPluginName: ignored, not read by headroom",
      "plugins[5].parameters.hashBlockSize: read, no effect: headroom takes the prefix hit from each request (prefixHit)",
      "pools: an EndpointPickerConfig has none, the default pools apply (no pods until pushed or discovered)",
    ]);
  });
});

describe("mapping", () => {
  test("every pair-optimizer parameter lands in optimizer", () => {
    const { config } = parseConfig(
      epp([
        optimizerPlugin({
          ttftWeight: 0.6,
          tpotWeight: 0.4,
          transferOverheadMs: 2.5,
          sloBufferFactor: 0.8,
          selectionStrategy: "best_headroom",
          negativeHeadroomProb: 0,
        }),
      ]),
    );
    expect(config.optimizer).toMatchObject({
      ttftWeight: 0.6,
      tpotWeight: 0.4,
      transferOverheadMs: 2.5,
      sloBufferFactor: 0.8,
      headroomStrategy: "best",
      negativeHeadroomProb: 0,
    });
  });

  test.each(Object.entries(SELECTION_STRATEGIES))("selectionStrategy %s is headroomStrategy %s", (seed, ours) => {
    expect(parseConfig(epp([optimizerPlugin({ selectionStrategy: seed })])).config.optimizer.headroomStrategy).toBe(ours);
  });

  test("the profile handler may be a plugin or the top-level profileHandler", () => {
    const handler = { type: "pd-slo-profile-handler", parameters: { pdThreshold: 64, transferOverheadMs: 1 } };
    const asPlugin = parseConfig(epp([handler])).config.optimizer;
    const asTopLevel = parseConfig(epp([], { profileHandler: handler })).config.optimizer;
    expect(asPlugin).toEqual(asTopLevel);
    expect(asPlugin).toMatchObject({ pdThreshold: 64, transferOverheadMs: 1, localPrefill: "threshold" });
  });

  test("an empty plugin list gives the defaults, with a warning", () => {
    const { config, warnings } = parseConfig(epp([]));
    expect(config).toEqual(defaultConfig());
    expect(warnings).toContain("plugins: no pd-slo-pair-optimizer, the optimizer defaults apply");
  });
});

describe("warnings", () => {
  test("unknown parameters, plugins and top-level keys are named", () => {
    const { warnings } = parseConfig(
      epp(
        [
          optimizerPlugin({ ttftWeight: 0.8, maxPairs: 100 }),
          handlerPlugin({ pdThreshold: 5, decodeProfile: "dec", extra: 1 }),
          { type: "my-scorer", name: "mine", weight: 2 },
        ],
        { featureGates: ["x"], schedulingProfiles: [{ name: "decode" }] },
      ),
    );
    expect(warnings).toEqual(
      expect.arrayContaining([
        "featureGates: ignored, not read by headroom",
        "plugins[2].weight: ignored, not read by headroom",
        "plugins[2] (my-scorer): ignored, not a headroom plugin",
        "plugins[0].parameters.maxPairs: ignored, not a pd-slo-pair-optimizer parameter",
        "plugins[1].parameters.extra: ignored, not read by headroom",
        'plugins[1].parameters.decodeProfile: "dec" names no schedulingProfiles entry (decode)',
      ]),
    );
  });
});

describe("errors name the field in the file", () => {
  test.each([
    [{ sloBufferFactor: 1.5 }, "plugins[0].parameters.sloBufferFactor: must be a number > 0 and <= 1, got 1.5"],
    [{ negativeHeadroomProb: -0.5 }, "plugins[0].parameters.negativeHeadroomProb: must be a number >= 0 and <= 1, got -0.5"],
    [{ ttftWeight: "0.8" }, 'plugins[0].parameters.ttftWeight: must be a number >= 0 and <= 1000000, got "0.8"'],
    [{ tpotWeight: -1 }, "plugins[0].parameters.tpotWeight: must be a number >= 0 and <= 1000000, got -1"],
    [{ transferOverheadMs: -5 }, "plugins[0].parameters.transferOverheadMs: must be a number >= 0, got -5"],
    [
      { selectionStrategy: "greedy" },
      'plugins[0].parameters.selectionStrategy: must be one of weighted_random (headroom: most), best_headroom (best), most, least, best, got "greedy"',
    ],
    [
      { ttftWeight: 0, tpotWeight: 0 },
      "plugins[0].parameters.ttftWeight: must be > 0 when optimizer.tpotWeight is 0 (one weight must be > 0), got 0",
    ],
  ])("pair optimizer %j", (parameters, problem) => {
    expect(problemsOf(epp([optimizerPlugin(parameters)]))).toEqual([problem]);
  });

  test.each([
    [{ pdThreshold: -1 }, "plugins[0].parameters.pdThreshold: must be an integer >= 0, got -1"],
    [{ pdThreshold: 2.5 }, "plugins[0].parameters.pdThreshold: must be an integer >= 0, got 2.5"],
    [{ hashBlockSize: 0 }, "plugins[0].parameters.hashBlockSize: must be an integer >= 1, got 0"],
    [{ transferOverheadMs: "fast" }, 'plugins[0].parameters.transferOverheadMs: must be a number >= 0, got "fast"'],
    [{ decodeProfile: 3 }, "plugins[0].parameters.decodeProfile: must be a non-empty string, got 3"],
  ])("profile handler %j", (parameters, problem) => {
    expect(problemsOf(epp([handlerPlugin(parameters)]))).toEqual([problem]);
  });

  test("the two plugins disagreeing on transferOverheadMs is an error", () => {
    expect(
      problemsOf(epp([optimizerPlugin({ transferOverheadMs: 5 }), handlerPlugin({ transferOverheadMs: 7 })])),
    ).toEqual(["plugins[1].parameters.transferOverheadMs: must equal plugins[0].parameters.transferOverheadMs (5), got 7"]);
  });

  test("structural problems", () => {
    expect(problemsOf(epp([optimizerPlugin({}), optimizerPlugin({})]))).toEqual([
      "plugins[1]: a second pd-slo-pair-optimizer (plugins[0] is the first)",
    ]);
    expect(problemsOf(epp(["prefill-filter"]))).toEqual([
      'plugins[0]: must be a mapping {type, name, parameters} with a non-empty type, got "prefill-filter"',
    ]);
    expect(problemsOf(epp([{ type: "pd-slo-pair-optimizer", parameters: [1] }]))).toEqual([
      "plugins[0].parameters: must be a mapping, got [1]",
    ]);
    expect(problemsOf(stringify({ kind: "EndpointPickerConfig", plugins: { a: 1 } }))).toEqual([
      'plugins: must be a list of {type, name, parameters}, got {"a":1}',
    ]);
    expect(problemsOf("kind: InferencePool\n")).toEqual([
      'kind: must be EndpointPickerConfig (a headroom configuration has no kind), got "InferencePool"',
    ]);
  });
});
