import { describe } from "vitest";
import { engineContract } from "./engine-contract.js";

describe("Engine on PGlite", () => engineContract("pglite"));
