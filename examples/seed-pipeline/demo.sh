#!/usr/bin/env bash
# The main job, as far as Reprise goes today: build the seed story's repository and validate each
# of its commits with the built CLI, showing which task digests each commit changes. Once the
# runner lands, this runs the pipeline, fixes it and relaunches it (issue 4).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
reprise="$root/bin/reprise.js"
[[ -f $root/dist/runner/cli/bin.js ]] || { echo "error: run 'npm run build' first" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/reprise-demo-XXXXXX")"
trap 'rm -rf "$work"' EXIT
repo="$work/seed-pipeline"

echo "== building the story repository at $repo"
"$here/make-story-repo.sh" "$repo"

for tag in broken fixed reshaped; do
  echo
  echo "== reprise validate --ref $tag   ($(git -C "$repo" log -1 --format=%s "$tag"))"
  "$reprise" validate --repo "$repo" --ref "$tag"
done

echo
echo "== what each commit changed"
node --input-type=module - "$reprise" "$repo" <<'JS'
import { execFileSync } from "node:child_process";
const [reprise, repo] = process.argv.slice(2);
const digests = (tag) =>
  JSON.parse(execFileSync(process.execPath, [reprise, "validate", "--repo", repo, "--ref", tag, "--json"], { encoding: "utf8" }));
const tags = ["broken", "fixed", "reshaped"];
const versions = tags.map(digests);
for (let i = 1; i < tags.length; i++) {
  const [a, b] = [versions[i - 1], versions[i]];
  const names = [...new Set([...Object.keys(a.tasks), ...Object.keys(b.tasks)])].sort();
  const change = (n) => (!a.tasks[n] ? "added" : !b.tasks[n] ? "removed" : a.tasks[n].digest === b.tasks[n].digest ? "unchanged" : "changed");
  console.log(`${tags[i - 1]} -> ${tags[i]}:`);
  for (const n of names) console.log(`  task ${n.padEnd(10)} ${change(n)}`);
}
JS
