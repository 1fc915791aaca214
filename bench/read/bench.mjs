// The read benchmark's driver (run by run.sh, which starts the database and both servers).
//
// 1. Draws sample ids from the database and builds every request body for both servers.
// 2. Checks, for every body, that both servers answer without errors and with the same data
//    (same ids in the same order, same titles, scores and counts); a difference stops the
//    benchmark. A query Reelgraph cannot answer yet (a field it lacks) is reported and skipped.
// 3. Counts the SQL statements one request of each query costs Reelgraph (its /metrics).
// 4. Per query: warms both servers up, then times them with wrk, alternating which goes
//    first, and samples the CPU time of each server, of its PostgreSQL backends and of wrk.
// 5. Writes results.json and summary.md to the results folder and prints the summary.
//
// Settings come from the environment (run.sh sets them): RG_URL, PG_URL, DB_URL, DB_NAME,
// RG_PID, PG_PID, RESULTS_DIR, DURATION, WARMUP, RUNS, CONNECTIONS, THREADS, SAMPLES, ONLY.
// SUMMARIZE=results/<time> only prints the summary of an earlier run again.

import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import pg from "pg";

import { queries, samples } from "./queries.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));

function env(name, fallback) {
  const value = process.env[name];
  if (value === undefined || value === "") {
    if (fallback === undefined) {
      if (process.env.SUMMARIZE) return "";
      throw new Error(`${name} is not set (run bench/read/run.sh)`);
    }
    return fallback;
  }
  return value;
}

const settings = {
  rgUrl: env("RG_URL"),
  pgUrl: env("PG_URL"),
  dbUrl: env("DB_URL"),
  dbName: env("DB_NAME"),
  rgPid: Number(env("RG_PID")),
  rgNoCacheUrl: env("RG_NOCACHE_URL"),
  rgNoCachePid: Number(env("RG_NOCACHE_PID")),
  churn: Number(env("CHURN", "0")),
  pgPid: Number(env("PG_PID")),
  resultsDir: env("RESULTS_DIR"),
  duration: Number(env("DURATION", "10")),
  warmup: Number(env("WARMUP", "5")),
  runs: Number(env("RUNS", "2")),
  connections: Number(env("CONNECTIONS", "32")),
  threads: Number(env("THREADS", "1")),
  samples: Number(env("SAMPLES", "64")),
  only: env("ONLY", "").split(",").filter(Boolean),
};

// Reelgraph runs twice: with its read cache (the default: anonymous answers served again until
// what they read changes) and with it off (REELGRAPH_READ_CACHE_SECS=0: every request runs its
// query). Both use the same request bodies.
const servers = [
  { key: "reelgraph", bodies: "reelgraph", label: "Reelgraph", url: settings.rgUrl, pid: settings.rgPid },
  { key: "uncached", bodies: "reelgraph", label: "RG no cache", url: settings.rgNoCacheUrl, pid: settings.rgNoCachePid },
  { key: "postgraphile", bodies: "postgraphile", label: "PostGraphile", url: settings.pgUrl, pid: settings.pgPid },
];

const log = (...args) => console.error(...args);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class BenchError extends Error {}

// ---- requests --------------------------------------------------------------------------------

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body,
  });
  const text = await response.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new BenchError(`${url} answered HTTP ${response.status} with a non-JSON body: ${text.slice(0, 300)}`);
  }
  return { status: response.status, json };
}

function bodyOf(query, variables) {
  return JSON.stringify(variables ? { query, variables } : { query });
}

/** The first place where two canonical answers differ, or null. */
function firstDifference(a, b, at = "$") {
  if (Object.is(a, b)) return null;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") {
    return { at, reelgraph: a, postgraphile: b };
  }
  if (Array.isArray(a) !== Array.isArray(b)) return { at, reelgraph: a, postgraphile: b };
  if (Array.isArray(a) && a.length !== b.length) {
    return { at: `${at}.length`, reelgraph: a.length, postgraphile: b.length };
  }
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const key of keys) {
    const found = firstDifference(a[key], b[key], Array.isArray(a) ? `${at}[${key}]` : `${at}.${key}`);
    if (found) return found;
  }
  return null;
}

/** Every list in a canonical answer must be non-empty, or the comparison proves little. */
function emptyLists(value, at = "$") {
  if (Array.isArray(value)) {
    if (value.length === 0) return [at];
    return value.flatMap((v, i) => emptyLists(v, `${at}[${i}]`));
  }
  if (value && typeof value === "object") {
    return Object.entries(value).flatMap(([k, v]) => emptyLists(v, `${at}.${k}`));
  }
  return [];
}

// ---- CPU accounting ------------------------------------------------------------------------

const TICK = 100; // USER_HZ on Linux

function processTicks(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]); // utime + stime, all threads
  } catch {
    return 0;
  }
}

/** CPU ticks of every PostgreSQL backend serving the benchmark database, by pid. */
function backendTicks() {
  const out = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
    } catch {
      continue;
    }
    if (cmdline.startsWith("postgres: ") && cmdline.split(" ").includes(settings.dbName)) {
      out.set(entry, processTicks(entry));
    }
  }
  return out;
}

function machineTicks() {
  const [, ...values] = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/);
  const n = values.map(Number);
  const total = n.reduce((a, b) => a + b, 0);
  const idle = n[3] + n[4];
  return { total, busy: total - idle };
}

function cpuSnapshot(server) {
  return {
    at: process.hrtime.bigint(),
    server: processTicks(server.pid),
    backends: backendTicks(),
    machine: machineTicks(),
  };
}

/** CPU use between two snapshots, in percent of one core. */
function cpuBetween(before, after, wrkTicks) {
  const seconds = Number(after.at - before.at) / 1e9;
  const pct = (ticks) => Math.round((100 * ticks) / TICK / seconds);
  let backends = 0;
  for (const [pid, ticks] of after.backends) backends += ticks - (before.backends.get(pid) ?? 0);
  const cores = os.cpus().length;
  const machineBusy =
    (after.machine.busy - before.machine.busy) / (after.machine.total - before.machine.total);
  return {
    server: pct(after.server - before.server),
    postgres: pct(backends),
    wrk: pct(wrkTicks),
    machine: Math.round(machineBusy * 100 * cores),
    capacity: 100 * cores,
  };
}

// ---- wrk -----------------------------------------------------------------------------------

function runWrk(url, bodiesFile, seconds) {
  return new Promise((resolve, reject) => {
    const args = [
      `-t${settings.threads}`,
      `-c${settings.connections}`,
      `-d${seconds}s`,
      "--timeout",
      "10s",
      "-s",
      path.join(here, "post.lua"),
      url,
    ];
    const child = spawn("wrk", args, {
      env: { ...process.env, BODIES: bodiesFile },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let ticks = 0;
    // Sampled just before it exits: wrk's own CPU time.
    const sampler = setInterval(() => {
      const t = processTicks(child.pid);
      if (t > 0) ticks = t;
    }, 200);
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", (err) => {
      clearInterval(sampler);
      reject(err);
    });
    child.on("close", (code) => {
      clearInterval(sampler);
      const line = stdout.split("\n").find((l) => l.startsWith("WRK_RESULT "));
      if (code !== 0 || !line) {
        reject(new BenchError(`wrk failed (exit ${code}): ${stderr || stdout}`));
        return;
      }
      resolve({ result: JSON.parse(line.slice("WRK_RESULT ".length)), ticks });
    });
  });
}

function summarizeRun(result) {
  const seconds = result.duration_us / 1e6;
  const e = result.errors;
  return {
    requests: result.requests,
    rps: result.requests / seconds,
    p50_ms: result.latency_us.p50 / 1000,
    p90_ms: result.latency_us.p90 / 1000,
    p99_ms: result.latency_us.p99 / 1000,
    max_ms: result.latency_us.max / 1000,
    failed: result.bad + e.connect + e.read + e.write + e.timeout,
    kb_per_response: result.bytes / Math.max(1, result.requests) / 1024,
  };
}

// ---- the benchmark ---------------------------------------------------------------------------

async function loadSamples() {
  const client = new pg.Client({ connectionString: settings.dbUrl });
  await client.connect();
  try {
    const out = {};
    for (const [name, sql] of Object.entries(samples)) {
      const { rows } = await client.query(sql, [settings.samples]);
      out[name] = rows.map((r) => r.id);
    }
    const { rows } = await client.query(
      `SELECT (SELECT count(*) FROM creators) AS creators, (SELECT count(*) FROM videos) AS videos,
              (SELECT count(*) FROM key_moments) AS key_moments,
              (SELECT count(*) FROM highlights) AS highlights,
              (SELECT count(*) FROM transcript_segments) AS transcript_segments,
              (SELECT count(*) FROM creator_follows) AS follows,
              (SELECT count(*) FROM users) AS users`,
    );
    out.dataset = Object.fromEntries(Object.entries(rows[0]).map(([k, v]) => [k, Number(v)]));
    return out;
  } finally {
    await client.end();
  }
}

/** SQL statements the Reelgraph without a read cache has sent: what a query costs to run. */
async function reelgraphStatements() {
  const response = await fetch(new URL("/metrics", settings.rgNoCacheUrl));
  const text = await response.text();
  const line = text.split("\n").find((l) => l.startsWith("reelgraph_db_statements_total "));
  if (!line) throw new BenchError("Reelgraph's /metrics has no reelgraph_db_statements_total");
  return Number(line.split(" ")[1]);
}

/** The read cache's lookups so far, by result, from the cached Reelgraph's /metrics. */
async function cacheLookups() {
  const response = await fetch(new URL("/metrics", settings.rgUrl));
  const text = await response.text();
  const count = (result) => {
    const line = text
      .split("\n")
      .find((l) => l.startsWith(`reelgraph_read_cache_lookups_total{result="${result}"} `));
    return line ? Number(line.split(" ")[1]) : 0;
  };
  return { hit: count("hit"), miss: count("miss") };
}

/** Checks every body of a query on both servers; returns null when equivalent, else why not. */
async function check(query, bodies) {
  for (let i = 0; i < bodies.reelgraph.length; i++) {
    const answers = {};
    for (const server of servers) {
      const { status, json } = await post(server.url, bodies[server.bodies][i]);
      if (status !== 200 || json.errors) {
        const message = json.errors ? json.errors.map((e) => e.message).join("; ") : `HTTP ${status}`;
        if (server.bodies === "reelgraph") return { unavailable: message };
        throw new BenchError(`${query.name}: PostGraphile failed: ${message}`);
      }
      answers[server.key] = server.bodies === "reelgraph"
        ? query.reelgraph.canonical(json.data)
        : query.postgraphile.canonical(json.data);
    }
    // Both Reelgraphs, the one with the cache asked a second time (its answer from the cache,
    // unless a change came in between: the lookups say which).
    const lookups = await cacheLookups();
    const again = await post(settings.rgUrl, bodies.reelgraph[i]);
    if ((await cacheLookups()).hit === lookups.hit) {
      log(`  (${query.name}: the cached Reelgraph's second answer to body ${i} was not from its cache)`);
    }
    const cached = again.json.errors ? { errors: again.json.errors } : query.reelgraph.canonical(again.json.data);
    for (const [name, other] of [["uncached", answers.uncached], ["cached", cached]]) {
      const diff = firstDifference(answers.reelgraph, other);
      if (diff) {
        throw new BenchError(`${query.name}: Reelgraph's answers differ (${name}) at ${diff.at}: ${JSON.stringify(diff)}`);
      }
    }
    const empty = emptyLists(answers.reelgraph);
    if (empty.length > 0) {
      throw new BenchError(`${query.name}: empty lists at ${empty.join(", ")} — the dataset is too small to compare`);
    }
    const diff = firstDifference(answers.reelgraph, answers.postgraphile);
    if (diff) {
      throw new BenchError(
        `${query.name}: the servers disagree at ${diff.at}:\n  Reelgraph:    ${JSON.stringify(diff.reelgraph)}\n  PostGraphile: ${JSON.stringify(diff.postgraphile)}\n  request: ${bodies.reelgraph[i]}`,
      );
    }
  }
  return null;
}

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const fmt = (x, digits = 1) => (x == null || Number.isNaN(x) ? "–" : x.toFixed(digits));
const fmtInt = (x) => Math.round(x).toLocaleString("en-US");

async function main() {
  mkdirSync(settings.resultsDir, { recursive: true });
  const drawn = await loadSamples();
  log(`dataset: ${JSON.stringify(drawn.dataset)}`);

  const selected = queries.filter((q) => settings.only.length === 0 || settings.only.includes(q.name));
  const plan = [];
  for (const query of selected) {
    const variableSets = query.sample ? drawn[query.sample].map((id) => ({ id })) : [null];
    const bodies = {
      reelgraph: variableSets.map((v) => bodyOf(query.reelgraph.query, v)),
      postgraphile: variableSets.map((v) => bodyOf(query.postgraphile.query, v)),
    };
    const files = {};
    for (const key of ["reelgraph", "postgraphile"]) {
      files[key] = path.join(settings.resultsDir, `${query.name}.${key}.jsonl`);
      writeFileSync(files[key], bodies[key].join("\n") + "\n");
    }
    log(`checking ${query.name} (${variableSets.length} request${variableSets.length > 1 ? "s" : ""} per server)…`);
    const problem = await check(query, bodies);
    if (problem) {
      log(`  ✗ Reelgraph cannot answer ${query.name}: ${problem.unavailable}`);
      plan.push({ query, files, unavailable: problem.unavailable });
      continue;
    }
    // A scrape of /metrics runs statements of its own (the job-queue gauges): measured with
    // two scrapes and nothing between them, and not counted against the query.
    const idle = await reelgraphStatements();
    const scrapeCost = (await reelgraphStatements()) - idle;
    const before = await reelgraphStatements();
    const probes = Math.min(8, bodies.reelgraph.length * 8);
    for (let i = 0; i < probes; i++) {
      await post(settings.rgNoCacheUrl, bodies.reelgraph[i % bodies.reelgraph.length]);
    }
    const statements = ((await reelgraphStatements()) - before - scrapeCost) / probes;
    log(`  ✓ same data on both servers; Reelgraph runs ${fmt(statements, 1)} SQL statements per request`);
    plan.push({ query, files, statements });
  }

  const results = [];
  for (const item of plan) {
    if (item.unavailable) {
      results.push({ name: item.query.name, title: item.query.title, unavailable: item.unavailable });
      continue;
    }
    const entry = { name: item.query.name, title: item.query.title, statements: item.statements, runs: [] };
    for (const server of servers) {
      log(`warming up ${server.label} on ${item.query.name} (${settings.warmup} s)…`);
      await runWrk(server.url, item.files[server.bodies], settings.warmup);
    }
    for (let run = 0; run < settings.runs; run++) {
      const order = run % 2 === 0 ? servers : [...servers].reverse();
      for (const server of order) {
        await sleep(1000);
        const load = os.loadavg()[0];
        const lookupsBefore = server.key === "reelgraph" ? await cacheLookups() : null;
        const before = cpuSnapshot(server);
        const { result, ticks } = await runWrk(server.url, item.files[server.bodies], settings.duration);
        const after = cpuSnapshot(server);
        const lookupsAfter = server.key === "reelgraph" ? await cacheLookups() : null;
        const hits = lookupsBefore ? lookupsAfter.hit - lookupsBefore.hit : null;
        const misses = lookupsBefore ? lookupsAfter.miss - lookupsBefore.miss : null;
        const hitRatio = lookupsBefore && hits + misses > 0 ? hits / (hits + misses) : null;
        const summary = summarizeRun(result);
        const cpu = cpuBetween(before, after, ticks);
        if (summary.failed > 0 || result.errors.status > 0) {
          throw new BenchError(
            `${item.query.name} on ${server.label}: ${summary.failed + result.errors.status} of ${summary.requests} requests failed during the timed run`,
          );
        }
        log(
          `  ${item.query.name} run ${run + 1} ${server.label.padEnd(12)} ${fmtInt(summary.rps).padStart(7)} req/s  p50 ${fmt(summary.p50_ms, 2)} ms  p99 ${fmt(summary.p99_ms, 2)} ms  cpu: server ${cpu.server}% postgres ${cpu.postgres}% wrk ${cpu.wrk}% machine ${cpu.machine}/${cpu.capacity}%  load ${load.toFixed(2)}${hitRatio == null ? "" : `  cache hits ${fmt(hitRatio * 100, 1)}%`}`,
        );
        entry.runs.push({ server: server.key, run: run + 1, load1: load, ...summary, cpu, hitRatio });
      }
    }
    results.push(entry);
  }

  const report = {
    date: new Date().toISOString(),
    machine: { cores: os.cpus().length, cpu: os.cpus()[0]?.model, loadavg_end: os.loadavg() },
    settings: { ...settings, rgUrl: undefined, pgUrl: undefined, dbUrl: undefined },
    dataset: drawn.dataset,
    results,
  };
  writeFileSync(path.join(settings.resultsDir, "results.json"), JSON.stringify(report, null, 2));
  const summary = renderSummary(report);
  writeFileSync(path.join(settings.resultsDir, "summary.md"), summary);
  console.log(summary);
  const missing = results.filter((r) => r.unavailable);
  if (missing.length > 0) {
    log(`\n${missing.length} quer${missing.length > 1 ? "ies were" : "y was"} not measured: ${missing.map((m) => m.name).join(", ")}`);
    process.exitCode = 3;
  }
}

function renderSummary(report) {
  const lines = [];
  const d = report.dataset;
  lines.push(
    `Dataset: ${fmtInt(d.creators)} creators, ${fmtInt(d.videos)} videos, ${fmtInt(d.key_moments)} key moments, ${fmtInt(d.highlights)} highlights, ${fmtInt(d.transcript_segments)} transcript segments, ${fmtInt(d.follows)} follows, ${fmtInt(d.users)} users.`,
  );
  lines.push(
    `Machine: ${report.machine.cores} cores (${report.machine.cpu}); wrk -t${report.settings.threads} -c${report.settings.connections}, ${report.settings.runs} × ${report.settings.duration} s per server and query, alternating, after ${report.settings.warmup} s of warm-up each.`,
  );
  lines.push("");
  if (report.settings.churn > 0) {
    lines.push(
      `Content changed during every run: ${report.settings.churn} video updates per second (each drops every cached answer).`,
    );
  }
  lines.push("");
  lines.push(
    "| query | Reelgraph | SQL stmts/req (run) | cache hits | Reelgraph req/s | PostGraphile req/s | ratio | Reelgraph p50 / p99 (ms) | PostGraphile p50 / p99 (ms) | p99 ratio (PG ÷ RG) | CPU ms/req: Reelgraph + its PG backends | CPU ms/req: PostGraphile + its PG backends | machine busy (RG / PG runs) | load (1 min) |",
  );
  lines.push("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
  for (const r of report.results) {
    if (r.unavailable) {
      lines.push(`| ${r.title} | | – | | not measured: ${r.unavailable.replace(/\|/g, "\\|")} | | | | | | | | | |`);
      continue;
    }
    const of = (key) => r.runs.filter((x) => x.server === key);
    const agg = (runs) => ({
      rps: mean(runs.map((x) => x.rps)),
      p50: mean(runs.map((x) => x.p50_ms)),
      p99: mean(runs.map((x) => x.p99_ms)),
      // CPU time per request, in ms: % of a core ÷ req/s × 10.
      server: mean(runs.map((x) => (x.cpu.server / x.rps) * 10)),
      postgres: mean(runs.map((x) => (x.cpu.postgres / x.rps) * 10)),
      machine: mean(runs.map((x) => x.cpu.machine)),
      capacity: runs[0].cpu.capacity,
      load: mean(runs.map((x) => x.load1)),
      hits: runs.every((x) => x.hitRatio != null) ? mean(runs.map((x) => x.hitRatio)) : null,
      spread: runs.map((x) => fmtInt(x.rps)).join(", "),
    });
    const b = agg(of("postgraphile"));
    // Results from before 2026-12-07 have one Reelgraph, without a read cache.
    const both = of("uncached").length > 0;
    const variants = both
      ? [["reelgraph", "read cache on (default)"], ["uncached", "read cache off"]]
      : [["reelgraph", "(no read cache yet)"]];
    for (const [key, label] of variants) {
      if (of(key).length === 0) continue;
      const a = agg(of(key));
      const hits = a.hits == null ? "–" : `${fmt(a.hits * 100, 1)}%`;
      lines.push(
        `| ${r.title} | ${label} | ${fmt(r.statements, 1)} | ${hits} | ${fmtInt(a.rps)} (${a.spread}) | ${fmtInt(b.rps)} (${b.spread}) | ${fmt(a.rps / b.rps, 2)}× | ${fmt(a.p50, 2)} / ${fmt(a.p99, 2)} | ${fmt(b.p50, 2)} / ${fmt(b.p99, 2)} | ${fmt(b.p99 / a.p99, 2)}× | ${fmt(a.server, 2)} + ${fmt(a.postgres, 2)} | ${fmt(b.server, 2)} + ${fmt(b.postgres, 2)} | ${Math.round(a.machine)}% / ${Math.round(b.machine)}% of ${a.capacity}% | ${fmt(Math.min(a.load, b.load), 2)}–${fmt(Math.max(...r.runs.map((x) => x.load1)), 2)} |`,
      );
    }
  }
  lines.push("");
  lines.push(
    "SQL stmts/req: what one request costs when its query runs (counted on the Reelgraph without the cache); cache hits: share of the timed run's requests answered from the read cache; req/s: mean of the runs (each run in brackets); p50/p99: mean of the runs' wrk percentiles; CPU ms/req: CPU time of the server process and of the PostgreSQL backends serving the benchmark database, per request, mean of the runs; machine busy: all CPUs, all processes; load: 1-minute load average when each run started.",
  );
  return lines.join("\n") + "\n";
}

// `SUMMARIZE=results/<time> node bench.mjs` re-renders the summary of an earlier run.
const entry = process.env.SUMMARIZE
  ? Promise.resolve().then(() => {
      const report = JSON.parse(readFileSync(path.join(process.env.SUMMARIZE, "results.json"), "utf8"));
      console.log(renderSummary(report));
    })
  : main();

entry.catch((err) => {
  if (err instanceof BenchError) {
    log(`\nFAILED: ${err.message}`);
  } else {
    log(err);
  }
  process.exit(1);
});
