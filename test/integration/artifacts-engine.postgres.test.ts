import { describe } from "vitest";
import { POSTGRES_AVAILABLE } from "../setup/stores.js";
import { artifactsEngineContract } from "./artifacts-engine-contract.js";

// Skipped (and reported as skipped) only when DATABASE_URL is unset; .ci/run always sets it.
describe.skipIf(!POSTGRES_AVAILABLE)("artifacts through the engine (Postgres)", () =>
  artifactsEngineContract("postgres", { diskTests: false }),
);
