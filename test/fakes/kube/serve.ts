/**
 * A fake cluster in a process of its own, so that a benchmark measures its client, not the fake
 * sharing its event loop: `node --import tsx test/fakes/kube/serve.ts '{"createLatencyMs":5}'`
 * prints one JSON line `{"kubeconfig", "url", "token"}` and serves until its stdin closes.
 * `GET /fake/requests` (with the token) returns what it was asked.
 */
import { readFileSync } from "node:fs";
import { type FakeKubeOptions, startFakeKube } from "./index.js";

const options = JSON.parse(process.argv[2] ?? "{}") as FakeKubeOptions;
const kube = await startFakeKube(options);
const config = JSON.parse(readFileSync(kube.kubeconfig, "utf8")) as {
  users: Array<{ user: { token: string } }>;
};
process.stdout.write(
  `${JSON.stringify({ kubeconfig: kube.kubeconfig, url: kube.url, token: config.users[0]?.user.token })}\n`,
);
process.stdin.resume();
process.stdin.on("end", () => {
  kube.close().finally(() => process.exit(0));
});
