// Validate one .glb with the Khronos glTF validator; print its JSON report summary; exit 1 on errors.
import { readFileSync } from "node:fs";
import validator from "gltf-validator";

const path = process.argv[2];
const report = await validator.validateBytes(new Uint8Array(readFileSync(path)), { maxIssues: 50 });
const out = { errors: report.issues.numErrors, warnings: report.issues.numWarnings, messages: report.issues.messages.slice(0, 20), info: report.info };
console.log(JSON.stringify(out));
process.exit(report.issues.numErrors > 0 ? 1 : 0);
