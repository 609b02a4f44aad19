/**
 * Code at a SHA for the local executor: the repository at a commit as a directory tasks run in
 * (docs/design.md section 7). The checkouts live in runner/sources/ (materialise.ts, the one step both
 * share; git-archive.ts for local repositories; tarball.ts for GitHub's tarballs); these are the
 * names the executor's callers have always imported from here.
 */
export { fileRepoCheckout, gitArchiveCheckout } from "../../sources/git-archive.js";
export { type Checkout, CheckoutRefused } from "../../sources/materialise.js";
