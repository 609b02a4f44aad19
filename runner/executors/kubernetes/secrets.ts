/**
 * Which repositories' tasks may name which Kubernetes Secrets (issue 14): the pod resolves a
 * task's `{ env, secret, key }` itself (secretKeyRef, manifests.ts), so Reprise never sees the
 * value, and every Job runs in the one namespace REPRISE_NAMESPACE names, where any Secret could
 * be named. REPRISE_KUBE_SECRETS says which Secret may be named by which repository:
 * `aws-creds@github.com/acme/ml`, `shared@*` (../secret-grants.ts). A task that names another is
 * refused at launch (user failure `secrets`): no Job is created.
 */
import type { SecretRef } from "../../../core/spec/types.js";
import { granted, parseSecretGrants, type SecretGrant } from "../secret-grants.js";

export const KUBE_SECRETS_VAR = "REPRISE_KUBE_SECRETS";

/** A Secret's name: a DNS-1123 subdomain. */
const SECRET_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export function parseKubeSecrets(value: string | undefined): {
  grants: SecretGrant[];
  problems: string[];
} {
  return parseSecretGrants(value, {
    name: SECRET_NAME,
    nameIs: "a Kubernetes Secret name (lowercase letters, digits, '-' and '.', at most 253)",
  });
}

/** What to set for the task's Secrets that its repository may not name; null when all may be. */
export function kubeSecretsProblem(
  task: { taskName: string; repo: string },
  refs: readonly SecretRef[],
  allowed: ReadonlyMap<string, readonly string[]>,
): string | null {
  const problems: string[] = [];
  for (const ref of refs) {
    const repos = allowed.get(ref.secret);
    if (granted(repos, task.repo)) continue;
    const what = `Secret ${ref.secret} (key ${ref.key}, as ${ref.env})`;
    problems.push(
      repos === undefined
        ? `${what} is not one ${KUBE_SECRETS_VAR} allows: add ${ref.secret}@${task.repo} to ${KUBE_SECRETS_VAR} where reprise runs (entries SECRET@REPOSITORY separated by commas)`
        : `${what} is one ${KUBE_SECRETS_VAR} allows only for ${repos.join(", ")}, not for ${task.repo}: add ${ref.secret}@${task.repo} to ${KUBE_SECRETS_VAR} if this repository may use it`,
    );
  }
  return problems.length === 0
    ? null
    : `task "${task.taskName}" cannot use its secrets on the kubernetes executor: ${problems.join("; ")}`;
}
