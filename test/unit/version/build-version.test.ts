import { describe, expect, it } from "vitest";
import { buildVersion } from "../../../core/version/build-version.js";
import { githubRepoKey, localRepoKey } from "../../../core/version/repo-key.js";

const tree = [
  { path: "a.py", mode: "100644", sha: "1".repeat(40) },
  { path: "lib/x.py", mode: "100644", sha: "2".repeat(40) },
];
const spec = (sources: string) => `version: 1
tasks:
  t:
    image: img
    command: [python, a.py]
    sources: ${sources}
`;

describe("buildVersion", () => {
  it("refuses a task whose sources match no file of the commit, at the sources line", () => {
    const r = buildVersion(spec("[src/**]"), tree);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors).toMatchObject([{ code: "E_SOURCES_EMPTY", line: 6, col: 14 }]);
  });

  it("warns about one glob that matches nothing when others do", () => {
    const r = buildVersion(spec("[a.py, src/**]"), tree);
    expect(r.ok).toBe(true);
    expect(r.warnings.filter((w) => w.code !== "W_IMAGE_DIGEST")).toMatchObject([
      { code: "W_SOURCES_UNMATCHED", line: 6, col: 21 },
    ]);
  });

  it("counts the files each task's sources matched", () => {
    const r = buildVersion(spec("[a.py, lib]"), tree);
    expect(r.ok && r.version.tasks.t?.sourceFiles).toBe(2);
  });

  it("passes spec errors through", () => {
    const r = buildVersion("version: 1\ntasks: 3\n", tree);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors[0]?.code).toBe("E_TYPE");
  });
});

describe("repository keys", () => {
  it("are github.com/OWNER/NAME or file://ABSOLUTE_PATH", () => {
    expect(githubRepoKey("acme/ml-pipes")).toBe("github.com/acme/ml-pipes");
    expect(localRepoKey("/home/me/repo/")).toBe("file:///home/me/repo");
    expect(() => githubRepoKey("acme")).toThrow(/OWNER\/NAME/);
    expect(() => localRepoKey("relative")).toThrow(/absolute/);
  });
});
