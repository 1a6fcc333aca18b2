#!/usr/bin/env node
// Entry point of the local DPS + IoT Hub emulator CLI (compiled TypeScript in lib/; run `npm run build` first
// when working from a clone).
"use strict";
const { main } = require("../lib/emulator/cli.js");

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.stderr.write(`azure-iot-local: ${(error && error.message) || "failed"}\n`);
    process.exitCode = 1;
  },
);
