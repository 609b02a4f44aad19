/**
 * API clients that reuse their connections. client-node 1.4's `makeApiClient` authenticates each
 * request by building a new http(s).Agent, without keep-alive: a new TCP connection, and against a
 * real cluster a new TLS handshake, for every create, read and delete. These clients authenticate
 * the same way (headers, tokens, exec plugins are applied per request as before) and then swap in
 * one keep-alive agent per distinct TLS setup. Proxy agents are left alone.
 */
import { createHash } from "node:crypto";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import {
  type Configuration,
  createConfiguration,
  type KubeConfig,
  type RequestContext,
  ServerConfiguration,
} from "@kubernetes/client-node";

/** Connections kept per API server: enough for a burst of launches, bounded. */
const MAX_SOCKETS = 64;

/** The shared agents, by TLS setup; `destroy()` each when done with the clients. */
export type Agents = Map<string, HttpAgent>;

export function keepAliveClient<T>(
  kc: KubeConfig,
  api: new (config: Configuration) => T,
  agents: Agents,
): T {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("the kubeconfig has no current cluster: set its current-context");
  const auth = {
    getName: () => "default",
    async applySecurityAuthentication(context: RequestContext): Promise<void> {
      await kc.applySecurityAuthentication(context);
      const fresh = context.getAgent();
      // Exactly the plain agents: a proxy agent subclasses them and must stay as it is.
      if (!fresh || (fresh.constructor !== HttpAgent && fresh.constructor !== HttpsAgent)) return;
      const options = (fresh as HttpAgent & { options: Record<string, unknown> }).options;
      const tls = fresh.constructor === HttpsAgent;
      const key = createHash("sha256")
        .update(
          JSON.stringify([
            tls,
            options.ca,
            options.cert,
            options.key,
            options.pfx,
            options.rejectUnauthorized,
          ]),
        )
        .digest("hex");
      let shared = agents.get(key);
      if (!shared) {
        const settings = { ...options, keepAlive: true, maxSockets: MAX_SOCKETS };
        shared = tls ? new HttpsAgent(settings) : new HttpAgent(settings);
        agents.set(key, shared);
      }
      context.setAgent(shared);
    },
  };
  return new api(
    createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: auth },
    }),
  );
}
