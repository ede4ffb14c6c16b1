// Run a MicroPython script on the WebAssembly port (31-bit small ints, no viper: like the boards)
// with the project's files copied into its in-memory filesystem, and turn the outcome into an
// exit code (the package's own CLI always exits 0).
//
//   node tools/mpwasm/run.mjs [--heapsize BYTES] [--no-summary] SCRIPT.py [ARGS...]
//
// SCRIPT is a path relative to the project root (e.g. tests/mp/run.py) or absolute. The project's
// ossuary_micro/, ossuary_io/, port/, tests/ (portable, mp, device), bench/ and the Wycheproof
// vectors ($WYCHEPROOF_DIR, else the vendored tests/data/wycheproof) are copied to /proj (the
// vectors to /proj/tests/data/wycheproof), so the tests' own path logic finds them. The script
// runs as __main__ with cwd /proj, sys.path[0] = /proj and sys.argv = [SCRIPT, ARGS...].
//
// Exit codes: 0 success; 1 tests failed (the last line is "N passed, M failed" with M > 0);
// 2 the final "N passed, N failed" line is missing (unless --no-summary); 3 the interpreter
// raised (an uncaught Python exception, traceback on stderr; SystemExit(n) gives n instead);
// 4 bad usage or a file problem.

import fs from "node:fs";
import path from "node:path";
import url from "node:url";

const HERE = path.dirname(url.fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..", "..");
const PKG = path.join(HERE, "node_modules", "@micropython", "micropython-webassembly-pyscript",
                      "micropython.mjs");

function die(msg) {
  process.stderr.write("run.mjs: " + msg + "\n");
  process.exit(4);
}

let heapsize = 32 * 1024 * 1024;
let needSummary = true;
const argv = process.argv.slice(2);
while (argv.length && argv[0].startsWith("--")) {
  const opt = argv.shift();
  if (opt === "--heapsize") {
    heapsize = parseInt(argv.shift(), 10);
    if (!(heapsize > 0)) die("--heapsize needs a positive number of bytes");
  } else if (opt === "--no-summary") {
    needSummary = false;
  } else {
    die("unknown option " + opt);
  }
}
if (!argv.length) die("usage: node tools/mpwasm/run.mjs [--heapsize N] [--no-summary] SCRIPT.py [ARGS...]");
const script = argv[0];
// Relative to the project root (runs as /proj/SCRIPT); an absolute host path also works.
const scriptHost = path.resolve(ROOT, script);
const scriptMp = path.isAbsolute(script) ? "/proj/" + path.basename(script) : "/proj/" + script;
if (!fs.existsSync(scriptHost)) die("no such script: " + script);
if (!fs.existsSync(PKG)) die("MicroPython WebAssembly package missing: run `make venv` (npm ci in tools/mpwasm)");

const { loadMicroPython } = await import(PKG);

// Collect stdout lines as they come: forward them at once (so long runs show progress) and keep
// the last non-empty one for the summary check.
let lastLine = "";
let pending = "";
function onStdout(data) {
  // linebuffer:false delivers one byte at a time as a Uint8Array.
  const s = typeof data === "string" ? data : Buffer.from(data).toString("latin1");
  process.stdout.write(s);
  pending += s;
  let i;
  while ((i = pending.indexOf("\n")) >= 0) {
    const line = pending.slice(0, i).replace(/\r$/, "");
    if (line.trim()) lastLine = line.trim();
    pending = pending.slice(i + 1);
  }
}
function onStderr(data) {
  process.stderr.write(typeof data === "string" ? data : Buffer.from(data));
}

const mp = await loadMicroPython({ heapsize, stdout: onStdout, stderr: onStderr, linebuffer: false });
const FS = mp.FS;

// Copy a host directory tree (only .py and .json files: sources, tests, vectors) into MEMFS.
function copyTree(src, dst, exts) {
  if (!fs.existsSync(src)) return 0;
  FS.mkdirTree(dst);
  let n = 0;
  for (const ent of fs.readdirSync(src, { withFileTypes: true })) {
    if (ent.name === "__pycache__" || ent.name === "node_modules" || ent.name.startsWith(".")) continue;
    const s = path.join(src, ent.name);
    const d = dst + "/" + ent.name;
    if (ent.isDirectory()) n += copyTree(s, d, exts);
    else if (exts.some((e) => ent.name.endsWith(e))) {
      FS.writeFile(d, fs.readFileSync(s));
      n++;
    }
  }
  return n;
}

for (const dir of ["ossuary_micro", "ossuary_io", "port", "bench"]) {
  copyTree(path.join(ROOT, dir), "/proj/" + dir, [".py"]);
}
FS.mkdirTree("/proj/tests");
if (fs.existsSync(path.join(ROOT, "tests", "__init__.py"))) {
  FS.writeFile("/proj/tests/__init__.py", fs.readFileSync(path.join(ROOT, "tests", "__init__.py")));
}
for (const dir of ["portable", "mp", "device"]) {
  copyTree(path.join(ROOT, "tests", dir), "/proj/tests/" + dir, [".py"]);
}
const vec = process.env.WYCHEPROOF_DIR || path.join(ROOT, "tests", "data", "wycheproof");
// The tests look in tests/data/wycheproof (the vendored copy); os.getenv does not exist on
// this port, so WYCHEPROOF_DIR is honoured here instead, by copying that folder there.
copyTree(vec, "/proj/tests/data/wycheproof", [".json"]);
// The Noise test vector of protocol 2 (tests/data/noise), read the same way.
copyTree(path.join(ROOT, "tests", "data", "noise"), "/proj/tests/data/noise", [".json"]);

const prelude = [
  "import sys, os",
  "os.chdir('/proj')",
  "sys.path.insert(0, '/proj')",
  "sys.argv[:] = " + JSON.stringify(argv),
  "__file__ = " + JSON.stringify(scriptMp),
].join("\n");

let code = 0;
try {
  mp.runPython(prelude);
  mp.runPython(fs.readFileSync(scriptHost, "utf8"));
} catch (error) {
  if (error.name !== "PythonError") throw error;
  if (error.type === "SystemExit") {
    const m = /SystemExit: (\d+)/.exec(error.message);
    code = m ? parseInt(m[1], 10) : (/SystemExit\s*$/.test(error.message.trim()) ? 0 : 1);
  } else {
    process.stderr.write(error.message);
    process.stderr.write("run.mjs: the interpreter raised " + error.type + "\n");
    code = 3;
  }
}
if (pending.trim()) lastLine = pending.trim();

if (code === 0 && needSummary) {
  const m = /^(?:\w+: )?(\d+) passed, (\d+) failed(?:, \d+ skipped)?$/.exec(lastLine);
  if (!m) {
    process.stderr.write("run.mjs: the final 'N passed, N failed' line is missing\n");
    code = 2;
  } else if (parseInt(m[2], 10) > 0) {
    code = 1;
  }
}
process.exit(code);
