import { describe } from "vitest";
import { POSTGRES_AVAILABLE } from "../setup/stores.js";
import { apiContract } from "./api-contract.js";

// Skipped (and reported as skipped) only when DATABASE_URL is unset; .ci/run always sets it.
describe.skipIf(!POSTGRES_AVAILABLE)("API on Postgres", () => apiContract("postgres"));
