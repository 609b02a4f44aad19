import { describe } from "vitest";
import { apiContract } from "./api-contract.js";

describe("API on PGlite", () => apiContract("pglite"));
