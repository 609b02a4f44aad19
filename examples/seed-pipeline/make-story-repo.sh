#!/usr/bin/env bash
# Creates a git repository at DIR whose history walks through the seed pipeline's story:
#
#   broken    "Add training pipeline"         prepare -> featurize -> train -> evaluate, train broken
#   fixed     "Fix train: ..."                 only tasks/train.mjs changes
#   reshaped  "Insert select step (B1)"       prepare -> featurize -> select -> {train, evaluate}
#
# Each commit is repo/ with the files of variants/<tag>/ laid over it (fixed has no variant).
# Authors, dates and configuration are fixed, so every run produces the same commit SHAs.
# Prints "TAG SHA" for each commit.
set -euo pipefail

usage() {
  echo "usage: $(basename "$0") DIR   (DIR must not exist or be empty)" >&2
  exit 2
}
[[ $# -eq 1 && -n $1 ]] || usage

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="$1"
if [[ -e $dir && ! -d $dir ]]; then
  echo "error: $dir exists and is not a directory" >&2
  exit 2
fi
if [[ -d $dir && -n "$(ls -A "$dir")" ]]; then
  echo "error: $dir is not empty; refusing to overwrite it" >&2
  exit 2
fi
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

# Nothing from the caller's git configuration (signing, hooks, templates, autocrlf) may leak into
# the objects: the SHAs must depend on this script and the example's files only.
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
git() { command git -C "$dir" "$@"; }

git init --quiet -b main --template=
git config user.name "Reprise Example"
git config user.email "example@reprise.invalid"
git config core.autocrlf false
git config core.fileMode true

# Replaces the working tree with repo/ plus the variant's files, then commits and tags it.
commit() {
  local tag="$1" date="$2" message="$3" variant="${4:-}"
  find "$dir" -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} +
  cp -R "$here/repo/." "$dir/"
  if [[ -n $variant ]]; then cp -R "$here/variants/$variant/." "$dir/"; fi
  # Git records only the executable bit; make it independent of the checkout's modes and umask.
  find "$dir" -path "$dir/.git" -prune -o -type f -exec chmod 644 {} +
  git add --all
  GIT_AUTHOR_DATE="$date" GIT_COMMITTER_DATE="$date" git commit --quiet --no-verify -m "$message"
  git tag "$tag"
  printf '%s %s\n' "$tag" "$(git rev-parse HEAD)"
}

commit broken "2024-05-06T09:00:00+00:00" "Add training pipeline

prepare -> featurize -> train -> evaluate on a synthetic housing data set." broken
commit fixed "2024-05-06T10:30:00+00:00" "Fix train: select training rows by \"split\", not \"spilt\"

The typo matched no row, so train had nothing to fit and failed."
commit reshaped "2024-05-07T14:00:00+00:00" "Insert select step (B1)

select drops the features that barely correlate with the price; train and
evaluate now read its output." reshaped
