#!/usr/bin/env bash
# The main job on the embedded default (PGlite + local executor): the seed story, end to end.
#   1. run at `broken`     -> train fails, evaluate is skipped
#   2. relaunch at `fixed` -> prepare and featurize come from the cache; train and evaluate run
#   3. relaunch at `reshaped` (select inserted) -> only select, train and evaluate run
#   4. revert the reshape  -> the revert is identical to `fixed`: production rolls back, all cache hits
#   5. remove every copy of the data outside the artifact store -> a relaunch is still all hits,
#      and the model comes back out of the store with `reprise artifacts get`
# Everything lives in a temporary directory (REPRISE_DATA_DIR too) and is removed at the end.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
[[ -f $root/dist/runner/cli/bin.js ]] || { echo "error: run 'npm run build' first" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/reprise-demo-XXXXXX")"
trap 'rm -rf "$work"' EXIT
repo="$work/seed-pipeline"
export REPRISE_DATA_DIR="$work/data"
unset DATABASE_URL
reprise() { node "$root/bin/reprise.js" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# The id of the newest execution, from the JSON document a command printed.
id_of() { node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(0, "utf8")).id)'; }

step "the story repository (examples/seed-pipeline/make-story-repo.sh)"
"$here/make-story-repo.sh" "$repo"
cd "$repo"

step "1. reprise run train --ref broken        (train has a bug)"
set +e
doc="$(reprise run train --ref broken --json 2>/dev/null)"
code=$?
set -e
[[ $code -eq 1 ]] || { echo "error: expected the broken run to fail (exit 1), got exit $code" >&2; exit 1; }
first="$(printf '%s' "$doc" | id_of)"
reprise status "$first" || true
echo "(exit 1: the execution failed, as it should)"

step "2. reprise relaunch $first --ref fixed   (the fix changes only train)"
reprise diff broken fixed 2>/dev/null
second="$(reprise relaunch "$first" --ref fixed --json 2>/dev/null | id_of)"
reprise status "$second"
echo
echo "the data and the model are artifacts, stored by content (sha256) in \$REPRISE_DATA_DIR/artifacts:"
reprise artifacts ls "$second"
reprise activate fixed 2>/dev/null

step "3. reprise relaunch $second --ref reshaped   (select inserted between featurize and train)"
reprise diff fixed reshaped 2>/dev/null
third="$(reprise relaunch "$second" --ref reshaped --json 2>/dev/null | id_of)"
reprise status "$third"
reprise activate reshaped 2>/dev/null

step "4. git revert the reshape: production rolls back, and the run is all cache hits"
git -c user.name="Reprise Example" -c user.email=example@reprise.invalid revert --no-edit HEAD >/dev/null
reprise activate HEAD 2>/dev/null
fourth="$(reprise run train --json 2>/dev/null | id_of)"
reprise status "$fourth"
reprise production 2>/dev/null

step "5. remove every copy of the CSVs and the model outside the store, then relaunch"
removed="$(find "$REPRISE_DATA_DIR/local/attempts" -path '*/io/*' -type f | wc -l | tr -d ' ')"
find "$REPRISE_DATA_DIR/local/attempts" -path '*/io' -prune -exec rm -rf {} +
echo "removed $removed files the tasks read and wrote; the store keeps one copy of each by digest"
fifth="$(reprise relaunch "$fourth" --json 2>/dev/null | id_of)"
reprise status "$fifth"
model="$(reprise status "$fifth" --json 2>/dev/null | node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(0, "utf8")).outputs.model.artifact)')"
reprise artifacts get "$model" -o "$work/model.json"
node -e 'const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(`model: ${m.kind}, weights for ${m.features.join(", ")}`)' "$work/model.json"

step "done: every step ran on the embedded database in a temporary REPRISE_DATA_DIR"
