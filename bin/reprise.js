#!/usr/bin/env node
// The built CLI (npm run build). During development: npx tsx runner/cli/bin.ts
import "../dist/runner/cli/bin.js";
