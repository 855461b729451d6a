// node:test reporter baked into JavaScript environment images (/opt/taskfactory): one JSON line
// per finished test with its file, the names of its suites and itself, its outcome, duration and
// the first line of its error. node --test --test-reporter=<this file>. Suites (describe) are not
// tests; a file that fails outside any test is a "file_error". tf_convert.py reads the lines.
export default async function* tfReporter(source) {
  const stacks = new Map(); // file -> names by nesting level, from test:start (declaration order)
  for await (const event of source) {
    const data = event.data || {};
    const file = data.file || "";
    if (event.type === "test:start") {
      const stack = stacks.get(file) || [];
      stack.length = data.nesting;
      stack[data.nesting] = data.name;
      stacks.set(file, stack);
      continue;
    }
    if (event.type !== "test:pass" && event.type !== "test:fail") continue;
    const details = data.details || {};
    const stack = stacks.get(file) || [];
    const names = [...stack.slice(0, data.nesting), data.name];
    const err = details.error;
    // A file whose top level throws is reported as a failing "test" named after the file.
    const fileLevel = data.nesting === 0 && file && (data.name === file || file.endsWith(data.name));
    if (details.type === "suite" && event.type === "test:pass") continue;
    if (details.type === "suite" && err && err.failureType === "subtestsFailed") continue;
    let outcome = event.type === "test:pass" ? "pass" : "fail";
    if (data.skip !== undefined && data.skip !== false) outcome = "skip";
    if (data.todo !== undefined && data.todo !== false) outcome = "todo";
    let message = "";
    if (err) {
      const cause = err.cause || err;
      message = String((cause && (cause.message || cause)) || "").split("\n")[0];
    }
    if (details.type === "suite" || fileLevel) {
      yield JSON.stringify({ kind: "file_error", file, names, message }) + "\n";
      continue;
    }
    yield JSON.stringify({ kind: "test", file, names, outcome, duration_ms: details.duration_ms || 0, message }) + "\n";
  }
}
