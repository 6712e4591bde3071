#!/usr/bin/env node
// A Redis Cluster client against a kvpool pool, driven by
// tests/integration/test_cluster_node_clients.py:
//
//   node cluster_client.js <ioredis|node-redis> <host> <port> <nkeys>
//
// Connects to the seed node as a cluster client of the chosen library, then
// over nkeys keys "nc:<i>" (spread over all slots): SET and GET each, MGET
// and MSET per slot, GETs in one pipeline per node, a MULTI/EXEC on one
// hashtag, DEL per slot and EXISTS to check the keys are gone. The library
// routes every command to the node that owns its slot (and follows MOVED
// if the server answers one). Prints one JSON line of counts; exits 1 on
// any mismatch or error.
"use strict";

const { inspect } = require("util");
const keySlot = require("cluster-key-slot");

const [lib, host, portArg, nkeysArg] = process.argv.slice(2);
const port = Number(portArg);
const nkeys = Number(nkeysArg);
if (!["ioredis", "node-redis"].includes(lib) || !host || !port || !(nkeys > 0)) {
  console.error("usage: node cluster_client.js <ioredis|node-redis> <host> <port> <nkeys>");
  process.exit(2);
}

// The same operations on both libraries. mget/mset/del/exists take keys of
// one slot; pipelineGets takes keys of one node; transaction keys of one slot.
async function ioredis() {
  const Redis = require("ioredis");
  const c = new Redis.Cluster([{ host, port }], { lazyConnect: true, redisOptions: { connectTimeout: 5000 } });
  c.on("error", (e) => fail(`ioredis: ${e.message}`));
  await c.connect();
  return {
    nodeOf: (slot) => c.slots[slot][0],
    set: (k, v) => c.set(k, v),
    get: (k) => c.get(k),
    mget: (keys) => c.mget(keys),
    mset: (pairs) => c.mset(pairs.flat()),
    del: (keys) => c.del(keys),
    exists: (keys) => c.exists(keys),
    async pipelineGets(keys) {
      const p = c.pipeline();
      keys.forEach((k) => p.get(k));
      return (await p.exec()).map(([err, v]) => { if (err) throw err; return v; });
    },
    async transaction(pairs) {
      const res = await c.multi().mset(pairs.flat()).mget(pairs.map(([k]) => k)).exec();
      return Array.isArray(res) ? res.map(([err, v]) => err || v) : res;
    },
    quit: () => c.quit(),
  };
}

async function nodeRedis() {
  const { createCluster } = require("redis");
  const c = createCluster({
    rootNodes: [{ url: `redis://${host}:${port}` }],
    defaults: { socket: { connectTimeout: 5000, reconnectStrategy: false } },
  });
  c.on("error", (e) => fail(`node-redis: ${e.message}`));
  await c.connect();
  return {
    nodeOf: (slot) => c.getSlotMaster(slot).address,
    set: (k, v) => c.set(k, v),
    get: (k) => c.get(k),
    mget: (keys) => c.mGet(keys),
    mset: (pairs) => c.mSet(pairs),
    del: (keys) => c.del(keys),
    exists: (keys) => c.exists(keys),
    pipelineGets(keys) {
      const m = c.multi(keys[0]); // routed by this key: the node of all of them
      keys.forEach((k) => m.get(k));
      return m.execAsPipeline();
    },
    transaction: (pairs) => c.multi().mSet(pairs).mGet(pairs.map(([k]) => k)).exec(),
    quit: () => c.quit(),
  };
}

function fail(msg) {
  console.error(`FAIL ${lib}: ${msg}`);
  process.exit(1);
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

function groupBy(items, keyOf) {
  const groups = new Map();
  for (const it of items) {
    const g = keyOf(it);
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(it);
  }
  return [...groups.values()];
}

async function main() {
  const c = lib === "ioredis" ? await ioredis() : await nodeRedis();
  const keys = Array.from({ length: nkeys }, (_, i) => `nc:${i}`);
  const first = new Map(keys.map((k, i) => [k, `v1:${i}`]));
  const second = new Map(keys.map((k, i) => [k, `v2:${i}`]));
  const bySlot = groupBy(keys, keySlot);
  const byNode = groupBy(keys, (k) => c.nodeOf(keySlot(k)));
  const counts = { lib, keys: nkeys, slots: bySlot.length, nodes: byNode.length };

  // SET and GET each key.
  const setReplies = await Promise.all(keys.map((k) => c.set(k, first.get(k))));
  check(setReplies.every((r) => r === "OK"), "a SET did not answer OK");
  counts.set = setReplies.length;
  const got = await Promise.all(keys.map((k) => c.get(k)));
  got.forEach((v, i) => check(v === first.get(keys[i]), `GET ${keys[i]}: ${v}`));
  counts.get = got.length;

  // MGET per slot.
  const mgets = await Promise.all(bySlot.map((ks) => c.mget(ks)));
  mgets.forEach((vals, g) => bySlot[g].forEach((k, j) => check(vals[j] === first.get(k), `MGET ${k}: ${vals[j]}`)));
  counts.mget_commands = mgets.length;
  counts.mget_keys = mgets.reduce((n, vals) => n + vals.length, 0);

  // MSET per slot (new values), read back with one pipeline of GETs per node.
  const msets = await Promise.all(bySlot.map((ks) => c.mset(ks.map((k) => [k, second.get(k)]))));
  check(msets.every((r) => r === "OK"), "an MSET did not answer OK");
  counts.mset_commands = msets.length;
  const piped = await Promise.all(byNode.map((ks) => c.pipelineGets(ks)));
  piped.forEach((vals, g) => byNode[g].forEach((k, j) => check(vals[j] === second.get(k), `pipelined GET ${k}: ${vals[j]}`)));
  counts.pipelines = piped.length;
  counts.pipeline_gets = piped.reduce((n, vals) => n + vals.length, 0);

  // MULTI/EXEC on one slot (a hashtag), multi-key inside.
  const tx = Array.from({ length: 10 }, (_, i) => [`nc:{tx}:${i}`, `t:${i}`]);
  const what = `MULTI, MSET and MGET of ${tx.length} keys in slot ${keySlot(tx[0][0])}, EXEC`;
  const txReply = await c.transaction(tx).catch((e) => { throw new Error(`${what}: ${e.message}`); });
  check(Array.isArray(txReply) && txReply[0] === "OK" && tx.every(([, v], i) => txReply[1][i] === v),
    `${what}: EXEC answered ${inspect(txReply)}`);
  counts.multi_exec_keys = tx.length;

  // DEL every key (per slot), then check each is gone.
  const all = [...bySlot, tx.map(([k]) => k)];
  const deleted = (await Promise.all(all.map((ks) => c.del(ks)))).reduce((a, b) => a + b, 0);
  check(deleted === nkeys + tx.length, `DEL removed ${deleted} of ${nkeys + tx.length} keys`);
  counts.del = deleted;
  const left = (await Promise.all(all.map((ks) => c.exists(ks)))).reduce((a, b) => a + b, 0);
  check(left === 0, `${left} keys still exist after DEL`);
  const gone = await Promise.all(keys.map((k) => c.get(k)));
  check(gone.every((v) => v === null), "a GET after DEL returned a value");
  counts.gone = gone.length;

  await c.quit();
  console.log(JSON.stringify(counts));
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
