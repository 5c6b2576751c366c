#!/usr/bin/env node
// Compiles contracts/src and contracts/test with the pinned solc-js (package.json) and
// writes contracts/build/<Name>.json = {contractName, sourceName, compiler, abi,
// bytecode, deployedBytecode}. Reproducible: fixed settings, no metadata in the
// bytecode, sources keyed by their path under contracts/, stable JSON.
// The artifacts the EVM board deploys (PACKAGED) are also written, byte-identical, to
// secagg/boards/artifacts/: package data of the wheel, loaded with importlib.resources.
//
//   node contracts/build.js              write contracts/build/ and secagg/boards/artifacts/
//   node contracts/build.js --out DIR    write DIR/ only (the tests compare)
"use strict";

const fs = require("fs");
const path = require("path");
const solc = require("solc");

const ROOT = __dirname; // contracts/
const SOURCE_DIRS = ["src", "test"];
const ARTIFACTS = ["PvssVerifier", "PvssRound", "PvssRoundInit", "PvssTask", "PvssTestHarness", "ReentrantChallenger", "ReentrantClaimer", "RoundStub", "FakeTask"];
const PACKAGED = ["PvssVerifier", "PvssRound", "PvssRoundInit", "PvssTask"];
const PACKAGE_DIR = path.join(ROOT, "..", "secagg", "boards", "artifacts");
const PINNED = require(path.join(ROOT, "..", "package.json")).devDependencies.solc;

const RUNS = 10000;
// PvssRound at 10 000 runs exceeds the EIP-170 limit (24 576 bytes deployed); 200 runs
// keeps it under (its proof checks run in PvssVerifier, compiled at 10 000 runs)
const RUNS_FOR = { PvssRound: 200 };

function settings(runs) {
  return {
    optimizer: { enabled: true, runs: runs },
    viaIR: true,
    evmVersion: "cancun",
    metadata: { bytecodeHash: "none", appendCBOR: false },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  };
}

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
  let packageDir = PACKAGE_DIR;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--out" && i + 1 < args.length) {
      outDir = path.resolve(args[++i]);
      packageDir = null;
    }
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
  const outputs = {};
  for (const runs of new Set([RUNS, ...Object.values(RUNS_FOR)])) {
    const input = { language: "Solidity", sources: sources(), settings: settings(runs) };
    const output = JSON.parse(solc.compile(JSON.stringify(input)));
    let failed = false;
    for (const err of output.errors || []) {
      if (err.severity === "error") failed = true;
      // sizes are checked below, per artifact at its own runs
      if (err.severity !== "error" && (runs !== RUNS || /Contract code size/.test(err.message))) continue;
      console.error(err.formattedMessage || err.message);
    }
    if (failed) process.exit(1);
    outputs[runs] = output;
  }

  // PvssRound and PvssTask pin PvssVerifier's code hash (VERIFIER_CODEHASH): check it is current
  for (const pinned of ["PvssRound.sol", "PvssTask.sol"]) {
    const { keccak256 } = require("js-sha3"); // a dependency of solc-js
    const v = outputs[RUNS_FOR.PvssVerifier || RUNS].contracts["src/PvssVerifier.sol"].PvssVerifier;
    const hash = keccak256(Buffer.from(v.evm.deployedBytecode.object, "hex"));
    const src = fs.readFileSync(path.join(ROOT, "src", pinned), "utf8");
    if (!src.includes(`VERIFIER_CODEHASH = 0x${hash};`)) {
      console.error(`contracts/src/${pinned}: set VERIFIER_CODEHASH = 0x${hash}`);
      process.exit(1);
    }
  }
  fs.mkdirSync(outDir, { recursive: true });
  if (packageDir) fs.mkdirSync(packageDir, { recursive: true });
  for (const name of ARTIFACTS) {
    const runs = RUNS_FOR[name] || RUNS;
    const output = outputs[runs];
    const sourceName = Object.keys(output.contracts).find((s) => name in output.contracts[s]);
    if (!sourceName) {
      console.error(`contract ${name} not found in the output`);
      process.exit(1);
    }
    const c = output.contracts[sourceName][name];
    const artifact = {
      contractName: name,
      sourceName: sourceName,
      compiler: { name: "solc", version: version, settings: settings(runs) },
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
    };
    if (c.evm.deployedBytecode.object.length / 2 > 24576) {
      console.error(`${name}: ${c.evm.deployedBytecode.object.length / 2} bytes deployed > 24576 (EIP-170)`);
      process.exit(1);
    }
    const file = path.join(outDir, `${name}.json`);
    const text = JSON.stringify(artifact, null, 2) + "\n";
    fs.writeFileSync(file, text);
    console.log(`${path.relative(process.cwd(), file)}: ${c.evm.deployedBytecode.object.length / 2} bytes deployed`);
    if (packageDir && PACKAGED.includes(name)) {
      const copy = path.join(packageDir, `${name}.json`);
      fs.writeFileSync(copy, text);
      console.log(`${path.relative(process.cwd(), copy)}: the same (package data)`);
    }
  }
}

main();
