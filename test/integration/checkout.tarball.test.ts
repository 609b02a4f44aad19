/**
 * The GitHub tarball checkout (runner/sources/tarball.ts, through the App's client in
 * app/tarball-source.ts) passes the checkout contract against the fake GitHub,
 * which serves real tarballs of real commits over HTTP (`git archive --format=tar.gz`, under
 * GitHub's wrapping directory) and the commit's tree as GitHub lists it.
 */
import { join } from "node:path";
import { pino } from "pino";
import { GitHubClient } from "../../app/github-client.js";
import { appTarballCheckout } from "../../app/tarball-source.js";
import type { TempRepo } from "../fakes/git-repo.js";
import { appPrivateKey, FakeGitHub } from "../fakes/github/index.js";
import { checkoutContract, commitFiles, scratch } from "./checkout-contract.js";

checkoutContract("GitHub tarball (over HTTP from the fake GitHub)", async () => {
  const root = scratch("reprise-contract-tarball-");
  const fake = await FakeGitHub.start();
  const client = new GitHubClient(
    { appId: 1, privateKey: appPrivateKey(), webhookSecret: "s", baseUrl: fake.baseUrl },
    fake.host,
    pino({ level: "silent" }),
  );
  const repos: TempRepo[] = [];
  let n = 0;
  return {
    async commit(files) {
      const { repo, sha } = commitFiles(files);
      repos.push(repo);
      const name = `acme/r${n}`;
      fake.addRepo({ fullName: name, dir: repo.dir, installationId: 7 });
      const cache = join(root.dir, `cache-${n++}`);
      const path = new RegExp(`^/repos/${name}/tarball/`);
      return {
        repo: `${fake.host}/${name}`,
        sha,
        cache,
        checkout: (limits) => appTarballCheckout(client, cache, limits),
        downloads: () => fake.count("GET", path),
      };
    },
    async close() {
      await fake.close();
      for (const r of repos) r.remove();
      root.cleanup();
    },
  };
});
