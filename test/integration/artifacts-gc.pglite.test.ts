import { describe } from "vitest";
import { artifactsGcContract } from "./artifacts-gc-contract.js";

describe("Artifact gc on PGlite", () => artifactsGcContract("pglite"));
