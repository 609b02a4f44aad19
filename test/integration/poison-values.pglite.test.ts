import { describe } from "vitest";
import { poisonValuesContract } from "./poison-values-contract.js";

describe("Poison values on PGlite", () => poisonValuesContract("pglite"));
