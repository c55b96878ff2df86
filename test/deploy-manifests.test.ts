// The Kubernetes manifests in deploy/k8s (base/ and the predictors/ overlay), checked offline: every document against the Kubernetes (and
// Prometheus Operator) JSON schemas bundled in kubernetes-models, the ConfigMap's configuration against
// headroom's own schema, and the properties the README promises (probes, non-root, read-only root
// filesystem, RBAC for discovery and scaling). A broken copy must fail, so the check can fail.

import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { ADMIN_TOKEN_ENV, parseConfig } from "../src/config/load.js";
import { ConfigError } from "../src/errors.js";
import { checkRemoteConfig, remoteEndpointsFromEnv } from "../src/predictors/remote.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const k8sDir = join(root, "deploy/k8s");
const baseDir = join(k8sDir, "base");

interface Manifest {
  file: string;
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [key: string]: unknown;
}

function manifests(dir = baseDir): Manifest[] {
  const out: Manifest[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".yaml"))) {
    for (const doc of parseAllDocuments(readFileSync(join(dir, file), "utf8"))) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0].message}`);
      const value = doc.toJS() as Manifest | null;
      if (value !== null) out.push({ ...value, file });
    }
  }
  return out;
}

/** The kubernetes-models class for an apiVersion and kind. */
async function modelFor(apiVersion: string, kind: string): Promise<new (data: unknown) => { validate(): void }> {
  const module =
    apiVersion === "monitoring.coreos.com/v1"
      ? await import("@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1")
      : await import(`kubernetes-models/${apiVersion}`);
  const model = (module as Record<string, unknown>)[kind];
  if (typeof model !== "function") throw new Error(`no schema for ${apiVersion} ${kind}`);
  return model as new (data: unknown) => { validate(): void };
}

async function validate(m: Manifest): Promise<void> {
  const { file: _file, ...data } = m;
  const Model = await modelFor(m.apiVersion, m.kind);
  new Model(data).validate();
}

const all = manifests();
const objects = all.filter((m) => m.kind !== "Kustomization");
const find = (kind: string) => objects.find((m) => m.kind === kind)! as Manifest & Record<string, any>;

describe("deploy/k8s", () => {
  it.each(objects.map((m) => [`${m.file}: ${m.kind} ${m.metadata.name}`, m] as const))("%s is valid against its schema", async (_name, m) => {
    await validate(m);
  });

  it("fails a broken manifest: the check can fail", async () => {
    const deployment = structuredClone(find("Deployment"));
    deployment.spec.template.spec.containers[0].ports[0].containerPort = "http";
    await expect(validate(deployment)).rejects.toThrow(/containerPort/);
    const monitor = structuredClone(find("ServiceMonitor"));
    monitor.spec.endpoints[0].interval = 15;
    await expect(validate(monitor)).rejects.toThrow(/interval/);
  });

  it("the kustomization lists every manifest file", () => {
    const kustomization = all.find((m) => m.kind === "Kustomization") as unknown as { resources: string[] };
    const files = [...new Set(objects.map((m) => m.file))].sort();
    expect([...kustomization.resources].sort()).toEqual(files);
  });

  it("the ConfigMap's configuration passes headroom's schema and discovers pods through Kubernetes", () => {
    const text = (find("ConfigMap").data as Record<string, string>)["headroom.yaml"];
    const { config } = parseConfig(text, "configmap.yaml");
    expect(config.pods.kubernetes?.namespace).toBe("llm-d");
    expect(Object.keys(config.pods.kubernetes!.selectors).sort()).toEqual(["high", "low", "medium"]);
    expect(config.server.host).toBe("0.0.0.0");
    expect(config.server.port).toBe(8080);
  });

  it("the Deployment runs several replicas, probes its replica's readiness and /healthz, drains before SIGTERM, and runs non-root on a read-only root filesystem", () => {
    const d = find("Deployment");
    expect(d.spec.replicas).toBeGreaterThan(1);
    const pod = d.spec.template.spec;
    const c = pod.containers[0];
    // Not plain /readyz: one pool without pods would take every replica out of the Service.
    expect(c.readinessProbe.httpGet.path).toBe("/readyz?scope=replica");
    expect(c.lifecycle.preStop.exec.command).toEqual(["sleep", "5"]);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(5);
    expect(c.livenessProbe.httpGet.path).toBe("/healthz");
    expect(c.resources.requests.cpu).toBeDefined();
    expect(c.resources.requests.memory).toBeDefined();
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } });
    expect(c.args).toEqual(["serve", "--config", "/etc/headroom/headroom.yaml"]);
    expect(pod.serviceAccountName).toBe(find("ServiceAccount").metadata.name);
  });

  it("replicas share nothing: a client stays on one replica, each replica has an address, a drain takes one at a time", () => {
    const services = objects.filter((m) => m.kind === "Service") as (Manifest & Record<string, any>)[];
    const byName = Object.fromEntries(services.map((s) => [s.metadata.name, s.spec]));
    // A report finds its pick only on the replica that made it.
    expect(byName.headroom.sessionAffinity).toBe("ClientIP");
    // Pushed pods go to every replica, by the headless Service's addresses.
    expect(byName["headroom-replicas"]).toMatchObject({ clusterIP: "None", selector: find("Deployment").spec.selector.matchLabels });
    // minAvailable: 2 blocked every drain of a single replica (an actuating planner's).
    expect(find("PodDisruptionBudget").spec).toMatchObject({ maxUnavailable: 1 });
    expect(find("PodDisruptionBudget").spec.minAvailable).toBeUndefined();
  });

  // The server listens on 0.0.0.0: without a token, anything that reaches the Service could push pods
  // and send the gateway's traffic to them. A ConfigMap is no place for the token, so a Secret gives it.
  it("the Deployment takes the admin token from a Secret it does not ship, into HEADROOM_ADMIN_TOKEN, and cannot start without it", () => {
    const c = find("Deployment").spec.template.spec.containers[0];
    const entries = (c.env as { name: string; value?: string; valueFrom?: Record<string, any> }[]).filter((e) => e.name === ADMIN_TOKEN_ENV);
    expect(entries).toHaveLength(1);
    const [entry] = entries;
    expect(entry!.value).toBeUndefined();
    expect(entry!.valueFrom).toEqual({ secretKeyRef: { name: "headroom-admin-token", key: "token", optional: false } });
    expect(c.envFrom).toBeUndefined();
    // No Secret is shipped, so no token anyone can read in this repository is ever in force.
    expect(all.filter((m) => m.kind === "Secret")).toEqual([]);
    expect(manifests(join(k8sDir, "predictors")).filter((m) => m.kind === "Secret")).toEqual([]);
    const configMap = (find("ConfigMap").data as Record<string, string>)["headroom.yaml"];
    expect(parseConfig(configMap).config.server.adminToken).toBeUndefined();
    // The predictor overlay's patch merges its env by name and leaves this entry alone.
    const patch = manifests(join(k8sDir, "predictors")).find((m) => m.file === "headroom-patch.yaml") as Manifest & Record<string, any>;
    expect((patch.spec.template.spec.containers[0].env as { name: string }[]).map((e) => e.name)).not.toContain(ADMIN_TOKEN_ENV);
  });

  it("headroom on the ConfigMap with the Secret's token guards the pods routes with it; a Secret with an empty key stops it at start", () => {
    const text = (find("ConfigMap").data as Record<string, string>)["headroom.yaml"];
    const token = "0123456789abcdef0123456789abcdef";
    expect(parseConfig(text, "configmap.yaml", { [ADMIN_TOKEN_ENV]: token }).config.server.adminToken).toBe(token);
    // `kubectl create secret --from-file` of a file `echo` wrote: its line break is not part of the token.
    expect(parseConfig(text, "configmap.yaml", { [ADMIN_TOKEN_ENV]: `${token}\n` }).config.server.adminToken).toBe(token);
    const refused = (value: string) => {
      try {
        parseConfig(text, "configmap.yaml", { [ADMIN_TOKEN_ENV]: value });
      } catch (err) {
        if (err instanceof ConfigError) return err.problems;
        throw err;
      }
      return [];
    };
    for (const empty of ["", "\n"]) {
      expect(refused(empty)).toEqual([expect.stringMatching(/^HEADROOM_ADMIN_TOKEN: must be a token of at least 16 characters when set/)]);
    }
  });

  it("RBAC allows what discovery and the scale actuator call, in the inference pods' namespace", () => {
    const role = find("Role");
    const config = parseConfig((find("ConfigMap").data as Record<string, string>)["headroom.yaml"]).config;
    expect(role.metadata.namespace).toBe(config.pods.kubernetes!.namespace);
    const allows = (group: string, resource: string, verb: string) =>
      (role.rules as { apiGroups: string[]; resources: string[]; verbs: string[] }[]).some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb));
    for (const verb of ["list", "watch"]) expect(allows("", "pods", verb)).toBe(true);
    for (const resource of ["deployments/scale", "statefulsets/scale"]) for (const verb of ["get", "update"]) expect(allows("apps", resource, verb)).toBe(true);
    const binding = find("RoleBinding");
    expect(binding.subjects[0]).toMatchObject({ kind: "ServiceAccount", name: "headroom", namespace: "headroom" });
  });
});

describe("deploy/k8s/predictors (the optional latency-predictor services)", () => {
  const overlay = manifests(join(k8sDir, "predictors"));
  const full = overlay.filter((m) => m.file === "predictors.yaml");

  it.each(full.map((m) => [`${m.kind} ${m.metadata.name}`, m] as const))("%s is valid against its schema", async (_name, m) => {
    await validate(m);
  });

  it("gives headroom the six URLs its remote predictor reads, pointing at the three services' training and prediction ports", () => {
    const patch = overlay.find((m) => m.file === "headroom-patch.yaml") as Manifest & Record<string, any>;
    const env = Object.fromEntries((patch.spec.template.spec.containers[0].env as { name: string; value: string }[]).map((e) => [e.name, e.value]));
    const config = parseConfig((overlay.find((m) => m.file === "config-patch.yaml")!.data as Record<string, string>)["headroom.yaml"]).config;
    // The one warning: headroom sends the decode-TTFT service no training (the overlay's comment says so).
    expect(checkRemoteConfig(config.predictors, env)).toEqual({ problems: [], warnings: [expect.stringMatching(/^predictors\.decodeTtft is remote, but headroom sends its service no training/)] });
    const endpoints = remoteEndpointsFromEnv(env);
    const services = full.filter((m) => m.kind === "Service").map((m) => m.metadata.name);
    for (const [quantity, e] of Object.entries(endpoints)) {
      expect(e!.trainingUrl).toBe(`http://${quantity}-predictor-svc:8000`);
      expect(e!.predictionUrls).toEqual([`http://${quantity}-predictor-svc:8001`]);
      expect(services).toContain(`${quantity}-predictor-svc`);
    }
    expect(Object.keys(endpoints).sort()).toEqual(["decode-tpot", "decode-ttft", "prefill-ttft"]);
  });

  it("the overlay's kustomization builds on deploy/k8s/base and applies both patches", () => {
    const k = overlay.find((m) => m.kind === "Kustomization") as unknown as { resources: string[]; patches: { path: string }[] };
    expect(k.resources).toEqual(["../base", "predictors.yaml"]);
    expect(k.patches.map((p) => p.path).sort()).toEqual(["config-patch.yaml", "headroom-patch.yaml"]);
  });
});

// kustomize refuses an overlay inside the directory it builds on ("cycle detected"): the predictors
// overlay sat in deploy/k8s and built on "..", and `kubectl apply -k deploy/k8s/predictors` failed.
const hasKubectl = spawnSync("kubectl", ["version", "--client"]).status === 0;

describe.skipIf(!hasKubectl)("kubectl kustomize (kubectl on the PATH)", () => {
  const build = (dir: string) => {
    const run = spawnSync("kubectl", ["kustomize", join(root, dir)], { encoding: "utf8" });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    return parseAllDocuments(run.stdout).map((d) => d.toJS() as Manifest & Record<string, any>);
  };
  const headroomEnv = (docs: (Manifest & Record<string, any>)[]) => {
    const deployment = docs.find((m) => m.kind === "Deployment" && m.metadata.name === "headroom")!;
    return (deployment.spec.template.spec.containers[0].env as { name: string }[]).map((e) => e.name).sort();
  };

  it("deploy/k8s builds headroom alone, with the admin token from its Secret", () => {
    const docs = build("deploy/k8s");
    expect(docs.map((m) => `${m.kind} ${m.metadata.name}`).sort()).toEqual(
      objects.map((m) => `${m.kind} ${m.metadata.name}`).sort(),
    );
    expect(headroomEnv(docs)).toContain(ADMIN_TOKEN_ENV);
  });

  it("deploy/k8s/predictors builds headroom, the three predictor services and headroom's six URLs beside its admin token", () => {
    const docs = build("deploy/k8s/predictors");
    const env = headroomEnv(docs);
    expect(env).toContain(ADMIN_TOKEN_ENV);
    for (const url of ["PREFILL_TTFT", "DECODE_TTFT", "DECODE_TPOT"].flatMap((q) => [`${q}_TRAINING_URL`, `${q}_PREDICTION_URL`])) expect(env).toContain(url);
    const services = docs.filter((m) => m.kind === "Service").map((m) => m.metadata.name);
    expect(services).toEqual(expect.arrayContaining(["headroom", "prefill-ttft-predictor-svc", "decode-ttft-predictor-svc", "decode-tpot-predictor-svc"]));
    const config = docs.find((m) => m.kind === "ConfigMap" && m.metadata.name === "headroom-config")!;
    expect(parseConfig((config.data as Record<string, string>)["headroom.yaml"]).config.predictors.prefillTtft).toBe("remote");
  });
});
