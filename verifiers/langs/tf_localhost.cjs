// Preloaded (NODE_OPTIONS=--require) in sandboxed Node test sessions. The sandbox has no network,
// and Docker then leaves /etc/hosts empty, so "localhost" does not resolve; dev servers that test
// runners start (vitest's vite) bind "localhost". Here it resolves to the loopback, nothing else.
"use strict";
const dns = require("dns");
const LOOPBACK = { address: "127.0.0.1", family: 4 };
const isLocal = (h) => h === "localhost" || h === "localhost.";
const lookup = dns.lookup;
dns.lookup = function (hostname, options, callback) {
  if (!isLocal(hostname)) return lookup.apply(this, arguments);
  if (typeof options === "function") { callback = options; options = {}; }
  const all = options && typeof options === "object" && options.all;
  process.nextTick(() => (all ? callback(null, [LOOPBACK]) : callback(null, LOOPBACK.address, 4)));
  return {};
};
const plookup = dns.promises.lookup;
dns.promises.lookup = function (hostname, options) {
  if (!isLocal(hostname)) return plookup.apply(this, arguments);
  const all = options && typeof options === "object" && options.all;
  return Promise.resolve(all ? [LOOPBACK] : LOOPBACK);
};
require("module").syncBuiltinESMExports();
