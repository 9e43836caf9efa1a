// ohttp_peer.mjs: an independent Oblivious HTTP (RFC 9458) peer for zaslon's tests.
//
// HPKE (RFC 9180) comes only from @hpke/core, @hpke/dhkem-x25519 and
// @hpke/chacha20poly1305; the Binary HTTP (RFC 9292) and OHTTP framing below is our
// own small glue, written from the RFCs (not npm's bhttp-js, which drops query strings
// and repeated fields). zaslon's C code (transport/tp_hpke, tp_bhttp, tp_ohttp) must
// interoperate with it byte for byte: tests/peer/run_peer_check.sh drives both.
//
// Every command prints one JSON object on stdout. All byte strings, including method,
// path, header names and values, are lowercase hex, so that the driver compares exact
// bytes with no escaping in between. Headers are [[name_hex, value_hex], ...] in wire
// order, repeats kept. Exit status 0 on success, 1 on any failure (message on stderr).
//
//   node ohttp_peer.mjs keygen <key_id>
//       -> {"sk", "pk", "key_config"}   a fresh X25519 key; the configuration lists
//                                        HKDF-SHA256 with AEADs 1, 2 and 3
//   node ohttp_peer.mjs seal <key_config_hex> <aead_id> <method> <url>
//                            [--body <hex>] [name:value ...]
//       -> {"request", "bhttp", "enc", "secret", "aead"}
//          request: the message/ohttp-req; secret: Export("message/bhttp response", Nk),
//          which with enc is all "open" needs
//   node ohttp_peer.mjs open <seal_json> <response_hex>
//       -> {"status", "informational", "headers", "body", "trailers"}
//   node ohttp_peer.mjs gateway <sk_hex> <key_config_hex> <request_hex> <status>
//                               [--body <hex>] [name:value ...]
//       -> {"request": {"method", "scheme", "authority", "path", "headers", "body",
//           "trailers", "aead"}, "response"}
//          decapsulates a message/ohttp-req with the key, and answers with a
//          known-length response carrying <status>, the fields and the body
//
// The URL is split as HTTP/2 would: scheme, authority (host[:port]), path + query.

import { Aes128Gcm, Aes256Gcm, CipherSuite } from "@hpke/core";
import { DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/dhkem-x25519";
import { Chacha20Poly1305 } from "@hpke/chacha20poly1305";

const te = new TextEncoder();

// ---- bytes ----------------------------------------------------------------------------

function hex(b) {
  return Buffer.from(b instanceof ArrayBuffer ? new Uint8Array(b) : b).toString("hex");
}

function unhex(s) {
  if (!/^([0-9a-fA-F]{2})*$/.test(s)) throw new Error(`not hex: ${s.slice(0, 40)}`);
  return new Uint8Array(Buffer.from(s, "hex"));
}

function concat(...parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function u16(v) {
  return new Uint8Array([v >> 8, v & 0xff]);
}

// ---- Binary HTTP (RFC 9292) -----------------------------------------------------------

function varint(v) {
  if (v < 0x40) return new Uint8Array([v]);
  if (v < 0x4000) return new Uint8Array([0x40 | (v >> 8), v & 0xff]);
  if (v < 0x40000000)
    return new Uint8Array([0x80 | (v >>> 24), (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff]);
  throw new Error("length too large for this peer");
}

function lp(bytes) {
  return concat(varint(bytes.length), bytes);
}

function fieldLines(fields) {
  return concat(...fields.map(([n, v]) => concat(lp(n), lp(v))));
}

// Known-length request (framing 0) with empty trailers, nothing truncated.
function encodeRequest({ method, scheme, authority, path, headers, body }) {
  const h = fieldLines(headers);
  return concat(
    varint(0), lp(method), lp(scheme), lp(authority), lp(path),
    varint(h.length), h, lp(body), varint(0),
  );
}

// Known-length response (framing 1), no informational responses, empty trailers.
function encodeResponse({ status, headers, body }) {
  const h = fieldLines(headers);
  return concat(varint(1), varint(status), varint(h.length), h, lp(body), varint(0));
}

class Reader {
  constructor(b) {
    this.b = b;
    this.o = 0;
  }
  done() {
    return this.o === this.b.length;
  }
  varint() {
    if (this.o >= this.b.length) throw new Error("truncated");
    const first = this.b[this.o];
    const n = 1 << (first >> 6);
    if (this.o + n > this.b.length) throw new Error("truncated");
    let v = first & 0x3f;
    for (let i = 1; i < n; i++) v = v * 256 + this.b[this.o + i];
    this.o += n;
    return v;
  }
  bytes(n) {
    if (this.o + n > this.b.length) throw new Error("truncated");
    const out = this.b.subarray(this.o, this.o + n);
    this.o += n;
    return out;
  }
  lp() {
    return this.bytes(this.varint());
  }
}

function checkName(n) {
  if (n.length === 0) throw new Error("empty field name");
  for (const c of n)
    if (!/[a-z0-9!#$%&'*+\-.^_`|~]/.test(String.fromCharCode(c)))
      throw new Error("bad field name");
}

function checkValue(v) {
  for (const c of v) if (c === 0 || c === 10 || c === 13) throw new Error("bad field value");
}

function readSection(r, known) {
  const fields = [];
  if (r.done()) return fields; // truncated: an empty section
  if (known) {
    const sec = new Reader(r.lp());
    while (!sec.done()) fields.push([sec.lp(), sec.lp()]);
  } else {
    for (;;) {
      const n = r.varint();
      if (n === 0) break;
      fields.push([r.bytes(n), r.lp()]);
    }
  }
  for (const [n, v] of fields) {
    checkName(n);
    checkValue(v);
  }
  return fields;
}

function readContent(r, known) {
  if (r.done()) return new Uint8Array(0);
  if (known) return r.lp();
  const chunks = [];
  for (;;) {
    const n = r.varint();
    if (n === 0) break;
    chunks.push(r.bytes(n));
  }
  return concat(...chunks);
}

function readPadding(r) {
  while (!r.done()) if (r.bytes(1)[0] !== 0) throw new Error("nonzero padding");
}

function decodeRequest(b) {
  const r = new Reader(b);
  const framing = r.varint();
  if (framing !== 0 && framing !== 2) throw new Error(`not a request: framing ${framing}`);
  const known = framing === 0;
  const req = { method: r.lp(), scheme: r.lp(), authority: r.lp(), path: r.lp() };
  req.headers = readSection(r, known);
  req.body = readContent(r, known);
  req.trailers = readSection(r, known);
  readPadding(r);
  return req;
}

function decodeResponse(b) {
  const r = new Reader(b);
  const framing = r.varint();
  if (framing !== 1 && framing !== 3) throw new Error(`not a response: framing ${framing}`);
  const known = framing === 1;
  const informational = [];
  let status;
  for (;;) {
    status = r.varint();
    if (status < 100 || status > 599) throw new Error(`bad status ${status}`);
    if (status >= 200) break;
    informational.push({ status, fields: readSection(r, known) });
  }
  const res = { status, informational };
  res.headers = readSection(r, known);
  res.body = readContent(r, known);
  res.trailers = readSection(r, known);
  readPadding(r);
  return res;
}

// ---- HPKE suites and OHTTP (RFC 9458) --------------------------------------------------

const KEM_X25519 = 0x0020;
const KDF_HKDF_SHA256 = 0x0001;
const AEADS = {
  1: { make: () => new Aes128Gcm(), nk: 16 },
  2: { make: () => new Aes256Gcm(), nk: 32 },
  3: { make: () => new Chacha20Poly1305(), nk: 32 },
};
const NN = 12;
const REQ_LABEL = te.encode("message/bhttp request");
const RES_LABEL = te.encode("message/bhttp response");

function suiteFor(aeadId) {
  const a = AEADS[aeadId];
  if (!a) throw new Error(`unsupported aead ${aeadId}`);
  return new CipherSuite({
    kem: new DhkemX25519HkdfSha256(),
    kdf: new HkdfSha256(),
    aead: a.make(),
  });
}

function parseKeyConfig(b) {
  if (b.length < 3) throw new Error("short key config");
  const keyId = b[0];
  const kemId = (b[1] << 8) | b[2];
  if (kemId !== KEM_X25519) throw new Error(`unsupported kem ${kemId}`);
  if (b.length < 3 + 32 + 2) throw new Error("short key config");
  const pk = b.subarray(3, 35);
  const algLen = (b[35] << 8) | b[36];
  if (algLen < 4 || algLen % 4 !== 0 || 37 + algLen !== b.length)
    throw new Error("bad key config length");
  const suites = [];
  for (let o = 37; o < b.length; o += 4)
    suites.push([(b[o] << 8) | b[o + 1], (b[o + 2] << 8) | b[o + 3]]);
  return { keyId, kemId, pk, suites };
}

function header(keyId, aeadId) {
  return concat(new Uint8Array([keyId]), u16(KEM_X25519), u16(KDF_HKDF_SHA256), u16(aeadId));
}

// Response keys (RFC 9458 section 4.4), from the exported secret.
async function responseAead(aeadId, enc, secret, responseNonce) {
  const kdf = new HkdfSha256();
  const nk = AEADS[aeadId].nk;
  const prk = await kdf.extract(concat(enc, responseNonce), secret);
  const key = new Uint8Array(await kdf.expand(prk, te.encode("key"), nk));
  const nonce = new Uint8Array(await kdf.expand(prk, te.encode("nonce"), NN));
  return { ctx: AEADS[aeadId].make().createEncryptionContext(key), nonce };
}

function parseFieldArgs(args) {
  const fields = [];
  let body = new Uint8Array(0);
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--body") {
      body = unhex(args[++i] ?? "");
      continue;
    }
    const c = args[i].indexOf(":");
    if (c <= 0) throw new Error(`field argument without a colon: ${args[i]}`);
    fields.push([te.encode(args[i].slice(0, c)), te.encode(args[i].slice(c + 1))]);
  }
  return { fields, body };
}

const fieldsHex = (fs) => fs.map(([n, v]) => [hex(n), hex(v)]);

// ---- commands ---------------------------------------------------------------------------

async function keygen(keyId) {
  const kem = new DhkemX25519HkdfSha256();
  const kp = await kem.generateKeyPair();
  const sk = new Uint8Array(await kem.serializePrivateKey(kp.privateKey));
  const pk = new Uint8Array(await kem.serializePublicKey(kp.publicKey));
  const algs = concat(...[1, 2, 3].map((a) => concat(u16(KDF_HKDF_SHA256), u16(a))));
  const cfg = concat(new Uint8Array([keyId]), u16(KEM_X25519), pk, u16(algs.length), algs);
  return { sk: hex(sk), pk: hex(pk), key_config: hex(cfg) };
}

async function seal(cfgHex, aeadStr, method, url, rest) {
  const cfg = parseKeyConfig(unhex(cfgHex));
  const aeadId = Number(aeadStr);
  if (!cfg.suites.some(([k, a]) => k === KDF_HKDF_SHA256 && a === aeadId))
    throw new Error(`suite (1, ${aeadId}) not in the key config`);
  const u = new URL(url);
  const { fields, body } = parseFieldArgs(rest);
  const bhttp = encodeRequest({
    method: te.encode(method),
    scheme: te.encode(u.protocol.replace(/:$/, "")),
    authority: te.encode(u.host),
    path: te.encode(u.pathname + u.search),
    headers: fields,
    body,
  });
  const suite = suiteFor(aeadId);
  const hdr = header(cfg.keyId, aeadId);
  const sender = await suite.createSenderContext({
    recipientPublicKey: await suite.kem.deserializePublicKey(cfg.pk),
    info: concat(REQ_LABEL, new Uint8Array([0]), hdr),
  });
  const ct = new Uint8Array(await sender.seal(bhttp));
  const enc = new Uint8Array(sender.enc);
  const secret = new Uint8Array(await sender.export(RES_LABEL, AEADS[aeadId].nk));
  return {
    request: hex(concat(hdr, enc, ct)),
    bhttp: hex(bhttp),
    enc: hex(enc),
    secret: hex(secret),
    aead: aeadId,
  };
}

async function open(ctxJson, resHex) {
  const ctx = JSON.parse(ctxJson);
  const res = unhex(resHex);
  const nk = AEADS[ctx.aead].nk;
  const nonceLen = Math.max(nk, NN);
  if (res.length < nonceLen + 16) throw new Error("short response");
  const { ctx: aead, nonce } = await responseAead(
    ctx.aead, unhex(ctx.enc), unhex(ctx.secret), res.subarray(0, nonceLen));
  const pt = new Uint8Array(await aead.open(nonce, res.subarray(nonceLen), new Uint8Array(0)));
  const r = decodeResponse(pt);
  return {
    status: r.status,
    informational: r.informational.map((i) => ({ status: i.status, fields: fieldsHex(i.fields) })),
    headers: fieldsHex(r.headers),
    body: hex(r.body),
    trailers: fieldsHex(r.trailers),
  };
}

async function gateway(skHex, cfgHex, reqHex, statusStr, rest) {
  const cfg = parseKeyConfig(unhex(cfgHex));
  const req = unhex(reqHex);
  if (req.length < 7 + 32 + 16) throw new Error("short request");
  const hdr = req.subarray(0, 7);
  const keyId = hdr[0];
  const kemId = (hdr[1] << 8) | hdr[2];
  const kdfId = (hdr[3] << 8) | hdr[4];
  const aeadId = (hdr[5] << 8) | hdr[6];
  if (keyId !== cfg.keyId || kemId !== KEM_X25519 || kdfId !== KDF_HKDF_SHA256)
    throw new Error("unknown key or suite");
  const enc = req.subarray(7, 39);
  const suite = suiteFor(aeadId);
  const sk = await suite.kem.deserializePrivateKey(unhex(skHex));
  const pk = await suite.kem.deserializePublicKey(cfg.pk);
  const recipient = await suite.createRecipientContext({
    recipientKey: { privateKey: sk, publicKey: pk },
    enc,
    info: concat(REQ_LABEL, new Uint8Array([0]), hdr),
  });
  const bhttp = new Uint8Array(await recipient.open(req.subarray(39)));
  const r = decodeRequest(bhttp);

  const { fields, body } = parseFieldArgs(rest);
  const resBhttp = encodeResponse({ status: Number(statusStr), headers: fields, body });
  const nk = AEADS[aeadId].nk;
  const secret = new Uint8Array(await recipient.export(RES_LABEL, nk));
  const responseNonce = crypto.getRandomValues(new Uint8Array(Math.max(nk, NN)));
  const { ctx: aead, nonce } = await responseAead(aeadId, enc, secret, responseNonce);
  const ct = new Uint8Array(await aead.seal(nonce, resBhttp, new Uint8Array(0)));
  return {
    request: {
      method: hex(r.method),
      scheme: hex(r.scheme),
      authority: hex(r.authority),
      path: hex(r.path),
      headers: fieldsHex(r.headers),
      body: hex(r.body),
      trailers: fieldsHex(r.trailers),
      aead: aeadId,
    },
    response: hex(concat(responseNonce, ct)),
  };
}

async function main(argv) {
  const [cmd, ...args] = argv;
  switch (cmd) {
    case "keygen":
      return keygen(Number(args[0] ?? 1));
    case "seal":
      if (args.length < 4) break;
      return seal(args[0], args[1], args[2], args[3], args.slice(4));
    case "open":
      if (args.length !== 2) break;
      return open(args[0], args[1]);
    case "gateway":
      if (args.length < 4) break;
      return gateway(args[0], args[1], args[2], args[3], args.slice(4));
  }
  throw new Error("usage: see the comment at the top of ohttp_peer.mjs");
}

main(process.argv.slice(2)).then(
  (out) => {
    process.stdout.write(JSON.stringify(out) + "\n");
  },
  (err) => {
    process.stderr.write(`ohttp_peer: ${err && err.message ? err.message : err}\n`);
    process.exit(1);
  },
);
