/**
 * The little numerics the pipeline needs. Only + - * / and sqrt (which IEEE 754 rounds exactly)
 * touch the data, so every run on every machine computes the same bits: the pipeline's outputs
 * are reproducible, which is what lets a memo cache stand in for a re-run.
 */

/** A seeded uniform [0, 1) generator (mulberry32), seeded from a string by FNV-1a. */
export function random(seedText) {
  let state = 0x811c9dc5;
  for (const ch of seedText) state = Math.imul(state ^ ch.codePointAt(0), 0x01000193);
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A standard normal sample, approximated by the sum of 12 uniforms (Irwin-Hall). */
export function normal(rand) {
  let sum = 0;
  for (let i = 0; i < 12; i++) sum += rand();
  return sum - 6;
}

export function mean(xs) {
  if (xs.length === 0) throw new Error("mean of no values");
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Population standard deviation. */
export function std(xs) {
  const m = mean(xs);
  return Math.sqrt(mean(xs.map((x) => (x - m) ** 2)));
}

/** Pearson correlation; 0 when either side is constant. */
export function correlation(xs, ys) {
  const mx = mean(xs);
  const my = mean(ys);
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < xs.length; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
    syy += (ys[i] - my) ** 2;
  }
  return sxx === 0 || syy === 0 ? 0 : sxy / Math.sqrt(sxx * syy);
}

/**
 * Ridge regression by least squares: minimises |Xw + b - y|^2 + l2 |w|^2 (the intercept b is not
 * penalised) by solving the normal equations. `xs` holds one array of feature values per row.
 */
export function fitLinear(xs, ys, l2) {
  const k = xs[0]?.length ?? 0;
  // Unknowns: w_0 .. w_{k-1}, then b. A = [X 1]^T [X 1] + l2 I (but not on b), c = [X 1]^T y.
  const a = Array.from({ length: k + 1 }, () => new Array(k + 1).fill(0));
  const c = new Array(k + 1).fill(0);
  for (let r = 0; r < xs.length; r++) {
    const row = [...xs[r], 1];
    for (let i = 0; i <= k; i++) {
      c[i] += row[i] * ys[r];
      for (let j = 0; j <= k; j++) a[i][j] += row[i] * row[j];
    }
  }
  for (let i = 0; i < k; i++) a[i][i] += l2;
  const solution = solve(a, c);
  return { weights: solution.slice(0, k), intercept: solution[k] };
}

/** Solves A x = b by Gaussian elimination with partial pivoting. */
export function solve(a, b) {
  const n = b.length;
  const m = a.map((row, i) => [...row, b[i]]);
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(m[r][col]) > Math.abs(m[pivot][col])) pivot = r;
    if (Math.abs(m[pivot][col]) < 1e-12) throw new Error("the system is singular: not enough data");
    [m[col], m[pivot]] = [m[pivot], m[col]];
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const f = m[r][col] / m[col][col];
      for (let j = col; j <= n; j++) m[r][j] -= f * m[col][j];
    }
  }
  return m.map((row, i) => row[n] / row[i]);
}

/** Mean squared error and the coefficient of determination of predictions against targets. */
export function scores(predicted, actual) {
  const mse = mean(actual.map((y, i) => (y - predicted[i]) ** 2));
  const m = mean(actual);
  const variance = mean(actual.map((y) => (y - m) ** 2));
  return { mse, r2: variance === 0 ? 0 : 1 - mse / variance };
}
