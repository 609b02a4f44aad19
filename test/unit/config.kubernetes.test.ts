import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../runner/config.js";

describe("loadConfig: the executor", () => {
  it("defaults to the local executor, with no namespace or kubeconfig", () => {
    expect(loadConfig({ HOME: "/h" })).toMatchObject({
      executor: "local",
      namespace: null,
      kubeconfig: null,
    });
  });

  it("selects Kubernetes with REPRISE_EXECUTOR, in REPRISE_NAMESPACE, with the first KUBECONFIG file", () => {
    expect(
      loadConfig({
        HOME: "/h",
        REPRISE_EXECUTOR: "kubernetes",
        REPRISE_NAMESPACE: "reprise-tasks",
        KUBECONFIG: ":/etc/kube/a.yaml:/etc/kube/b.yaml",
      }),
    ).toMatchObject({
      executor: "kubernetes",
      namespace: "reprise-tasks",
      kubeconfig: "/etc/kube/a.yaml",
    });
  });

  it("refuses an unknown executor and a namespace Kubernetes would refuse, saying what is allowed", () => {
    const run = () =>
      loadConfig({ HOME: "/h", REPRISE_EXECUTOR: "nomad", REPRISE_NAMESPACE: "Tasks_1" });
    expect(run).toThrow(ConfigError);
    expect(run).toThrow(/REPRISE_EXECUTOR: must be "local" or "kubernetes"/);
    expect(run).toThrow(/REPRISE_NAMESPACE: must be a Kubernetes namespace name/);
  });
});
