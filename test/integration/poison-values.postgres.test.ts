import { describe } from "vitest";
import { POSTGRES_AVAILABLE } from "../setup/stores.js";
import { poisonValuesContract } from "./poison-values-contract.js";

// Skipped (and reported as skipped) only when DATABASE_URL is unset; .ci/run always sets it.
describe.skipIf(!POSTGRES_AVAILABLE)("Poison values on Postgres", () =>
  poisonValuesContract("postgres"),
);
