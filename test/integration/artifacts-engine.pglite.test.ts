import { describe } from "vitest";
import { artifactsEngineContract } from "./artifacts-engine-contract.js";

describe("artifacts through the engine (PGlite)", () => artifactsEngineContract("pglite"));
