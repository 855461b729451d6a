// Grading's in-process guard for Node test sessions (jest, vitest, mocha, node:test): the Node
// counterpart of tf_report.py's guard mode. Preloaded first in every Node process of a graded
// session (NODE_OPTIONS=--require <random name outside /testbed>), before any project code.
//
// Why: the code under test shares the runner's process. Imported, it could rewrite the runner's
// report on exit, turn the assertion library into a no-op, or exit 0 early. This module keeps
// what it sees in a closure project code cannot reach and writes it, signed, where the grader
// reads it (verifiers/langs/guard.py checks it):
//   * keys: the first Node process reads the one-time master key from $TF_NG_KEY and deletes the
//     file; every process hands each child it spawns a fresh key HMAC(key, token) in a file the
//     child's guard deletes on reading. A child that is not Node leaves its file: the grader
//     checks its content, so a file put back by project code does not pass for an unused one.
//   * a stream per process, $TF_NG_DIR/<token>.jsonl: "start", then at exit the findings and
//     "finish" with the record count, each record HMAC-chained. A process that ends without its
//     finish (process.reallyExit, a removed exit listener, a signal) is seen as missing.
//   * findings: assertion and runner objects changed since they were first loaded (core assert,
//     node:test, chai/should/expect, mocha's Runner/Runnable/Test); process.exit, process.binding
//     and writes to the runner's report, grading's folders or node_modules from project code
//     (a stack frame in /testbed outside node_modules); vm code compiled from project code under
//     a file name outside /testbed (which would hide its frames).
//   * the runner's report: the SHA-256 of what the runner itself (no project frame) wrote to
//     $TF_NG_NATIVE, so a report rewritten later by anyone (a subprocess included) fails.
"use strict";
(function tfNodeGuard() {
  const dir = process.env.TF_NG_DIR;
  if (!dir) return;
  const fs = require("fs");
  const crypto = require("crypto");
  const pathm = require("path");
  const cp = require("child_process");
  const Module = require("module");
  const vm = require("vm");
  const O = {
    readFileSync: fs.readFileSync, writeFileSync: fs.writeFileSync, unlinkSync: fs.unlinkSync,
    existsSync: fs.existsSync, captureStackTrace: Error.captureStackTrace, hmac: crypto.createHmac,
    hash: crypto.createHash, resolve: pathm.resolve, stringify: JSON.stringify, keys: Reflect.ownKeys,
    desc: Object.getOwnPropertyDescriptor, randomBytes: crypto.randomBytes, on: process.on.bind(process),
    listenerCount: process.listenerCount.bind(process), kill: process.kill.bind(process), pid: process.pid,
  };
  const NATIVE = process.env.TF_NG_NATIVE || "";
  const ROOT = process.env.TF_NG_ROOT || "/testbed/"; // a test of the guard itself points it elsewhere
  let key = null;
  let token = "";
  const childFile = process.env.TF_NG_TOKEN;
  const master = process.env.TF_NG_KEY;
  try {
    if (childFile && O.existsSync(childFile)) {
      key = Buffer.from(String(O.readFileSync(childFile, "utf8")).trim(), "hex");
      O.unlinkSync(childFile);
      token = pathm.basename(childFile).replace(/\.key$/, "");
    } else if (master && O.existsSync(master)) {
      key = Buffer.from(String(O.readFileSync(master, "utf8")).trim(), "hex");
      O.unlinkSync(master);
      token = "root";
    }
  } catch (e) { key = null; }
  delete process.env.TF_NG_KEY;
  if (!key) return; // no key: a second Node process under one non-Node child; it signs nothing
  const stream = `${dir}/${token}.jsonl`;
  // A process that runs tests (a runner, its worker, node:test's per-file child, node --test
  // itself) is held to its exits; a program the tests start (a CLI under test) may exit as it likes.
  const script = String(process.argv[1] || "");
  const isTestProcess = process.execArgv.includes("--test") || token === "root"
    || /\/node_modules\/(\.bin\/)?(mocha|jest|jest-cli|jest-worker|jest-runner|vitest|tinypool|@vitest\/[^/]+|bnt)(\/|$)/.test(script)
    || /(\.(test|spec)\.[cm]?[jt]sx?$)|\/(test|tests|__tests__|spec)\//.test(script);
  const findings = [];
  const children = [];
  const native = [];
  let mac = "";
  let count = 0;
  const lines = [];
  function canon(v) {
    if (Array.isArray(v)) return "[" + v.map(canon).join(", ") + "]";
    if (v && typeof v === "object") {
      return "{" + Object.keys(v).sort().map((k) => O.stringify(k) + ": " + canon(v[k])).join(", ") + "}";
    }
    return O.stringify(v);
  }
  function record(rec) {
    count += 1;
    mac = O.hmac("sha256", key).update(mac + canon(rec)).digest("hex");
    lines.push(O.stringify({ ...rec, mac }));
    O.writeFileSync(stream, lines.join("\n") + "\n");
  }
  // After the finish record (another exit listener, run after ours), a finding is written at once:
  // the record count then disagrees with the finish, which the grader reports as well.
  let done = false;
  function see(what) {
    if (findings.length >= 50 || findings.includes(what)) return;
    findings.push(what);
    if (done) record({ type: "finding", what });
  }

  // The first stack frame that is project code: a file under /testbed outside node_modules.
  function projectFrame() {
    const saveP = Error.prepareStackTrace;
    const saveL = Error.stackTraceLimit;
    let frames = null;
    try {
      Error.stackTraceLimit = 200;
      Error.prepareStackTrace = (_e, cs) => cs;
      const holder = {};
      O.captureStackTrace(holder, projectFrame);
      frames = holder.stack;
    } catch (e) {
      frames = null;
    } finally {
      try { Error.prepareStackTrace = saveP; Error.stackTraceLimit = saveL; } catch (e) { /* reported below */ }
    }
    if (!Array.isArray(frames)) return "(a stack made unreadable)";
    for (const f of frames) {
      let name = "";
      try { name = f.getFileName() || (f.isEval() ? String(f.getEvalOrigin() || "") : ""); } catch (e) { name = ""; }
      name = String(name).replace(/^file:\/\//, "");
      const at = name.indexOf(ROOT);
      if (at >= 0 && !name.includes("/node_modules/")) return name.slice(at) + ":" + f.getLineNumber();
    }
    return null;
  }
  const guarded = (p) => {
    let s = "";
    try { s = O.resolve(String(p && p.href ? new URL(p.href).pathname : p)); } catch (e) { return false; }
    return (NATIVE && s === NATIVE) || s.startsWith("/tf-out/") || s.startsWith("/tmp/tf-")
      || s.startsWith("/opt/taskfactory") || s.includes("/node_modules/") || s === stream;
  };
  const pathOf = (p) => { try { return O.resolve(String(p && p.href ? new URL(p.href).pathname : p)); } catch (e) { return ""; } };
  const digest = (data, enc) => {
    try {
      const buf = typeof data === "string" ? Buffer.from(data, typeof enc === "string" ? enc : (enc && enc.encoding) || "utf8")
        : Buffer.from(data.buffer ? data.buffer : data, data.byteOffset || 0, data.byteLength);
      return O.hash("sha256").update(buf).digest("hex");
    } catch (e) { return "unhashable"; }
  };
  // Writes: the runner's report is fingerprinted; project code writing a guarded path is a finding.
  function onWrite(p, kind, data, enc, whole) {
    if (typeof p === "number" || !guarded(p)) return;
    const who = projectFrame();
    if (who) { see(`${kind} of ${pathOf(p)} from ${who}`); return; }
    if (NATIVE && pathOf(p) === NATIVE) {
      native.push(whole ? digest(data, enc) : "appended");
      checkSnaps("when the runner wrote its report");
      checkMatchers(globalThis, "when the runner wrote its report");
    }
  }
  const wrap = (obj, name, kind, whole) => {
    const orig = obj[name];
    if (typeof orig !== "function") return;
    const w = function (p, data, enc) { onWrite(p, kind, data, enc, whole); return orig.apply(this, arguments); };
    Object.defineProperty(w, "name", { value: name });
    obj[name] = w;
  };
  wrap(fs, "writeFileSync", "write", true);
  wrap(fs, "writeFile", "write", true);
  wrap(fs, "appendFileSync", "append", false);
  wrap(fs, "appendFile", "append", false);
  wrap(fs.promises, "writeFile", "write", true);
  wrap(fs.promises, "appendFile", "append", false);
  for (const name of ["openSync", "open", "createWriteStream", "renameSync", "rename", "unlinkSync", "unlink",
    "rmSync", "rm", "truncateSync", "truncate", "copyFileSync", "copyFile", "symlinkSync", "symlink"]) {
    for (const obj of [fs, fs.promises]) {
      const orig = obj[name];
      if (typeof orig !== "function") continue;
      const w = function (p, flags) {
        const write = !/^open|^createWriteStream/.test(name) || (flags && flags !== "r" && flags !== "rs")
          || (flags && typeof flags === "object" && flags.flags && flags.flags !== "r");
        const target = /^(rename|copyFile|symlink)/.test(name) ? arguments[1] : p;
        if (write && (guarded(p) || guarded(target))) {
          const who = projectFrame();
          if (who) see(`${name} of ${pathOf(guarded(target) ? target : p)} from ${who}`);
          else if (NATIVE && pathOf(p) === NATIVE && name !== "unlinkSync" && name !== "rmSync") native.push("stream");
        }
        return orig.apply(this, arguments);
      };
      obj[name] = w;
    }
  }
  // Leaving early, and the interpreter's internals, from project code.
  for (const name of ["exit", "reallyExit", "abort", "binding", "_linkedBinding", "dlopen"]) {
    const orig = process[name];
    if (typeof orig !== "function") continue;
    const exits = name === "exit" || name === "reallyExit" || name === "abort";
    process[name] = function () {
      const who = exits && !isTestProcess ? null : projectFrame();
      if (who) see(`process.${name}(${name === "binding" ? O.stringify(String(arguments[0])) : (arguments[0] ?? "")}) from ${who}`);
      return orig.apply(this, arguments);
    };
  }
  const kill = process.kill;
  process.kill = function (pid) {
    const who = projectFrame();
    if (who && isTestProcess && (pid === O.pid || pid === 0 || pid === -1)) see(`process.kill(${pid}) from ${who}`);
    return kill.apply(this, arguments);
  };
  // vm code compiled from project code under a name outside /testbed would hide its frames.
  const vmCheck = (filename) => {
    if (typeof filename === "string" && filename && !filename.startsWith(ROOT)) {
      const who = projectFrame();
      if (who) see(`vm code named ${filename} compiled from ${who}`);
    }
  };
  for (const name of ["runInThisContext", "runInNewContext", "runInContext", "compileFunction"]) {
    const orig = vm[name];
    vm[name] = function (code, a, b) {
      const opts = name === "compileFunction" ? b : (name === "runInThisContext" ? a : b);
      vmCheck(typeof opts === "string" ? opts : opts && opts.filename);
      return orig.apply(this, arguments);
    };
  }
  const Script = vm.Script;
  vm.Script = class extends Script {
    constructor(code, opts) { vmCheck(typeof opts === "string" ? opts : opts && opts.filename); super(code, opts); }
  };

  // Children get their own key (spawn, fork, exec, execFile and the Sync forms all pass here).
  const giveKey = (options) => {
    const t = O.randomBytes(12).toString("hex");
    const file = `${dir}/${t}.key`;
    O.writeFileSync(file, O.hmac("sha256", key).update(t).digest("hex"));
    children.push(t);
    return file;
  };
  const nodeOptions = process.env.NODE_OPTIONS || "";
  const ChildProcess = cp.ChildProcess;
  const spawnInternal = ChildProcess.prototype.spawn;
  const withKey = (options) => {
    if (!options || typeof options !== "object") return;
    const file = giveKey();
    const pairs = (options.envPairs || []).filter((kv) => !/^(TF_NG_TOKEN|TF_NG_KEY|TF_NG_DIR|TF_NG_NATIVE|NODE_OPTIONS)=/.test(kv));
    pairs.push(`TF_NG_TOKEN=${file}`, `TF_NG_DIR=${dir}`, `TF_NG_NATIVE=${NATIVE}`, `NODE_OPTIONS=${nodeOptions}`);
    options.envPairs = pairs;
  };
  ChildProcess.prototype.spawn = function (options) { withKey(options); return spawnInternal.call(this, options); };
  for (const name of ["spawnSync", "execSync", "execFileSync"]) {
    const orig = cp[name];
    cp[name] = function () {
      const args = Array.from(arguments);
      const at = name === "execSync" || !Array.isArray(args[1]) ? 1 : 2;
      const opts = { ...(args[at] && typeof args[at] === "object" ? args[at] : {}) };
      const env = { ...(opts.env || process.env) };
      env.TF_NG_TOKEN = giveKey(); env.TF_NG_DIR = dir; env.TF_NG_NATIVE = NATIVE; env.NODE_OPTIONS = nodeOptions;
      delete env.TF_NG_KEY;
      opts.env = env;
      args[at] = opts;
      return orig.apply(this, args);
    };
  }

  // Assertion and runner objects, snapshot by identity when first loaded (before project code
  // for the built-ins; on the load that gives them out for the rest).
  const snaps = [];
  function snap(label, obj) {
    if (!obj || (typeof obj !== "object" && typeof obj !== "function")) return;
    if (snaps.some((s) => s[1] === obj)) return;
    const props = new Map();
    for (const k of O.keys(obj)) {
      const d = O.desc(obj, k);
      if (d) props.set(k, "value" in d ? d.value : d.get);
    }
    snaps.push([label, obj, props]);
  }
  function checkSnaps(when) {
    for (const [label, obj, props] of snaps) {
      for (const [k, v] of props) {
        const d = O.desc(obj, k);
        const now = d ? ("value" in d ? d.value : d.get) : undefined;
        if (now !== v && !(typeof v !== "function" && typeof v !== "object")) see(`${label}.${String(k)} was replaced (${when})`);
      }
    }
  }
  const assert = require("assert");
  snap("assert", assert);
  snap("assert.strict", assert.strict);
  snap("assert.AssertionError.prototype", assert.AssertionError.prototype);
  try { const t = require("node:test"); snap("node:test", t); for (const k of ["describe", "it", "test", "suite"]) snap(`node:test.${k}`, t[k]); } catch (e) { /* older Node */ }
  const WATCH = [
    [/\/node_modules\/chai\/(index|lib\/chai)\.js$/, (m, l) => { snap(l, m); snap(`${l}.assert`, m.assert); if (m.Assertion) { snap(`${l}.Assertion.prototype`, m.Assertion.prototype); } }],
    [/\/node_modules\/(should|expect|power-assert|@jest\/expect|assert)\/.*\.js$/, (m, l) => snap(l, m)],
    [/\/node_modules\/mocha\/lib\/(runner|runnable|test|suite|hook)\.js$/, (m, l) => { snap(l, m); if (m.prototype) snap(`${l}.prototype`, m.prototype); }],
    [/\/node_modules\/mocha\/lib\/reporters\/json\.js$/, (m, l) => { snap(l, m); if (m.prototype) snap(`${l}.prototype`, m.prototype); }],
    [/\/node_modules\/jest-circus\/build\/(state|utils|run)\.js$/, (m, l) => snap(l, m)],
  ];
  // jest's and vitest's expect: a matcher named like a built-in one that the library did not
  // define itself (jest marks its own; vitest keeps only extended ones there) was put there by
  // expect.extend (jest adds its snapshot matchers that way: those are not checked); and jest's test-file global `expect`, assigned once by jest, must stay.
  const MATCHERS = Symbol.for("$$jest-matchers-object");
  const INTERNAL = Symbol.for("$$jest-internal-matcher");
  const BUILTIN = new Set(("toBe toEqual toStrictEqual toBeTruthy toBeFalsy toBeNull toBeUndefined toBeDefined toContain "
    + "toContainEqual toHaveLength toHaveProperty toMatch toMatchObject toThrow toThrowError toBeGreaterThan "
    + "toBeGreaterThanOrEqual toBeLessThan toBeLessThanOrEqual toBeCloseTo toBeInstanceOf toBeNaN toHaveBeenCalled "
    + "toHaveBeenCalledWith toHaveBeenCalledTimes toHaveReturned toHaveReturnedWith toBeTypeOf toSatisfy toHaveBeenLastCalledWith toHaveBeenNthCalledWith toBeOneOf "
    + "toHaveBeenCalledOnce toBeCalled toBeCalledWith "
    + "lastCalledWith nthCalledWith toReturn toReturnWith").split(" "));
  // vitest keeps its built-in matchers there too, unmarked: they are recorded when vitest publishes
  // its global expect (Object.defineProperty on globalThis, before any test file is imported).
  const GLOBAL_EXPECT = Symbol.for("expect-global");
  let vitestMatchers = null;
  const defineProperty = Object.defineProperty;
  Object.defineProperty = function (obj, key) {
    const out = defineProperty.apply(this, arguments);
    if (obj === globalThis && key === GLOBAL_EXPECT && !vitestMatchers) {
      try { const m = globalThis[MATCHERS].matchers; vitestMatchers = new Map(Object.keys(m).map((k) => [k, m[k]])); } catch (e) { /* none */ }
    }
    return out;
  };
  function checkMatchers(g, where) {
    let state = null;
    try { state = g && g[MATCHERS]; } catch (e) { state = null; }
    const m = state && state.matchers;
    if (!m || typeof m !== "object") return;
    if (g === globalThis && vitestMatchers) {
      for (const [name, fn] of vitestMatchers) if (m[name] !== fn) see(`expect's ${name} was replaced (${where})`);
      return;
    }
    const names = Object.keys(m);
    if (!names.some((n) => m[n] && m[n][INTERNAL] === true)) return; // not jest's expect
    for (const name of names) {
      if (BUILTIN.has(name) && m[name][INTERNAL] !== true) see(`expect's ${name} was replaced by expect.extend (${where})`);
    }
  }
  function guardJestGlobal(g) {
    if (!g || typeof g !== "object") return;
    let value;
    let sets = 0;
    try {
      Object.defineProperty(g, "expect", {
        configurable: false, enumerable: true, get: () => value,
        set: (v) => { sets += 1; if (sets > 1) see(`the test global expect was replaced from ${projectFrame() || "a library"}`); value = v; },
      });
    } catch (e) { /* already defined: the environment set its own */ }
  }
  const wrapAdapter = (adapter) => (typeof adapter !== "function" ? adapter : async function (...args) {
    const environment = args[2];
    const g = environment && environment.global;
    guardJestGlobal(g);
    try {
      return await adapter.apply(this, args);
    } finally {
      checkMatchers(g, `after ${args[4] ? pathm.relative("/testbed", String(args[4])) : "a test file"}`);
      checkSnaps("after a test file");
    }
  });
  const adapters = new Map();
  const load = Module._load;
  Module._load = function (request, parent) {
    let out = load.apply(this, arguments);
    if (typeof request === "string" && !request.startsWith("node:")) {
      let file = "";
      try { file = Module._resolveFilename(request, parent); } catch (e) { file = ""; }
      for (const [re, fn] of WATCH) if (re.test(file)) fn(out, file.slice(file.lastIndexOf("node_modules/") + 13));
      // jest's test framework (jest-circus's adapter; jest-jasmine2 before jest 27): same arguments.
      if (/\/node_modules\/(jest-circus\/runner|jest-jasmine2\/build\/index)\.js$/.test(file)) {
        out = adapters.get(out) || adapters.set(out, wrapAdapter(out)).get(out);
      }
    }
    return out;
  };
  // Our own wrappers (libraries such as signal-exit legitimately wrap process.exit: not these).
  const wrapped = { load: Module._load, spawn: ChildProcess.prototype.spawn, writeFileSync: fs.writeFileSync,
    promisesWriteFile: fs.promises.writeFile, defineProperty: Object.defineProperty };
  Module.syncBuiltinESMExports();

  function finish(how) {
    if (done) return;
    checkSnaps("at exit");
    checkMatchers(globalThis, "at exit");
    for (const [k, v] of Object.entries(wrapped)) {
      const now = k === "load" ? Module._load : k === "spawn" ? ChildProcess.prototype.spawn
        : k === "promisesWriteFile" ? fs.promises.writeFile : k === "defineProperty" ? Object.defineProperty : fs[k];
      if (now !== v) see(`the guard's ${k} was replaced`);
    }
    done = true;
    for (const f of findings) record({ type: "finding", what: f });
    record({ type: "finish", how, children, native, records: count + 1, pid: O.pid });
  }
  record({ type: "start", pid: O.pid, argv: process.argv.slice(1, 4).map(String), test: isTestProcess });
  O.on("exit", () => finish("exit"));
  for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"]) {
    const handler = () => {
      finish(sig);
      if (O.listenerCount(sig) <= 1) { process.removeListener(sig, handler); O.kill(O.pid, sig); }
    };
    O.on(sig, handler);
  }
})();
