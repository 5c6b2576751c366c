#!/usr/bin/env node
// Compiles contracts/src and contracts/test with the pinned solc-js (package.json) and
// writes contracts/build/<Name>.json = {contractName, sourceName, compiler, abi,
// bytecode, deployedBytecode}. Reproducible: fixed settings, no metadata in the
// bytecode, sources keyed by their path under contracts/, stable JSON.
//
//   node contracts/build.js              write contracts/build/
//   node contracts/build.js --out DIR    write DIR/ instead (the tests compare)
"use strict";

const fs = require("fs");
const path = require("path");
const solc = require("solc");

const ROOT = __dirname; // contracts/
const SOURCE_DIRS = ["src", "test"];
const ARTIFACTS = ["PvssVerifier", "PvssRound", "PvssTestHarness"];
const PINNED = require(path.join(ROOT, "..", "package.json")).devDependencies.solc;

const SETTINGS = {
  optimizer: { enabled: true, runs: 10000 },
  viaIR: true,
  evmVersion: "cancun",
  metadata: { bytecodeHash: "none", appendCBOR: false },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

function sources() {
  const out = {};
  for (const dir of SOURCE_DIRS) {
    for (const name of fs.readdirSync(path.join(ROOT, dir)).sort()) {
      if (!name.endsWith(".sol")) continue;
      const key = `${dir}/${name}`;
      out[key] = { content: fs.readFileSync(path.join(ROOT, key), "utf8") };
    }
  }
  return out;
}

function main() {
  const args = process.argv.slice(2);
  let outDir = path.join(ROOT, "build");
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--out" && i + 1 < args.length) outDir = path.resolve(args[++i]);
    else {
      console.error(`usage: node contracts/build.js [--out DIR]`);
      process.exit(2);
    }
  }
  const version = solc.version();
  if (!version.startsWith(PINNED + "+")) {
    console.error(`solc ${version} is not the pinned ${PINNED}: run npm ci`);
    process.exit(1);
  }
  const input = { language: "Solidity", sources: sources(), settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  let failed = false;
  for (const err of output.errors || []) {
    console.error(err.formattedMessage || err.message);
    if (err.severity === "error") failed = true;
  }
  if (failed) process.exit(1);

  fs.mkdirSync(outDir, { recursive: true });
  for (const name of ARTIFACTS) {
    const sourceName = Object.keys(output.contracts).find((s) => name in output.contracts[s]);
    if (!sourceName) {
      console.error(`contract ${name} not found in the output`);
      process.exit(1);
    }
    const c = output.contracts[sourceName][name];
    const artifact = {
      contractName: name,
      sourceName: sourceName,
      compiler: { name: "solc", version: version, settings: SETTINGS },
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
    };
    const file = path.join(outDir, `${name}.json`);
    fs.writeFileSync(file, JSON.stringify(artifact, null, 2) + "\n");
    console.log(`${path.relative(process.cwd(), file)}: ${c.evm.deployedBytecode.object.length / 2} bytes deployed`);
  }
}

main();
