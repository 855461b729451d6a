// Preloaded (NODE_OPTIONS=--require) in sandboxed Node test sessions. The sandbox has no network;
// dev servers that test runners start (vitest's vite) bind "localhost", which here resolves to the
// IPv4 loopback and nothing else, whatever the container's /etc/hosts holds (Docker leaves it
// empty when networking is disabled outright, as sandboxes once were).
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
