import { describe } from "vitest";
import { storeContract } from "./store-contract.js";

describe("Store on PGlite", () => storeContract("pglite"));
