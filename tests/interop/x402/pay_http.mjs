// Independent peer: the official x402 JS v2 client (@x402/fetch + @x402/evm, viem) pays for a
// real inference over HTTP.
//
// Usage: node pay_http.mjs URL VERSION < request.json
// Posts the JSON request to URL with fetch wrapped by wrapFetchWithPayment, which reads the 402,
// signs with the key in VOUCH_PAYER_KEY and retries. VERSION 2 uses the server's answer as sent
// (PAYMENT-REQUIRED header); VERSION 1 hides that header from the client, as a v1-only server
// would answer, so it pays from the v1 JSON body.
// With VOUCH_X402_SCHEME=upto the client's upto scheme (@x402/evm/upto/client: a Permit2
// PermitWitnessTransferFrom for the offered maximum, v2 only) is registered instead of exact.
// Prints {"status", "body", "settlement", "settlement_header"}; exits 3 if the packages are missing.

let fetchPkg, evm, upto, accounts;
try {
  fetchPkg = await import("@x402/fetch");
  evm = await import("@x402/evm/exact/client");
  upto = await import("@x402/evm/upto/client");
  accounts = await import("viem/accounts");
} catch (e) {
  console.error(`x402 JS client not installed (${e.message}); run tests/setup/pay.sh`);
  process.exit(3);
}

const [url, version] = process.argv.slice(2);
const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const request = Buffer.concat(chunks).toString("utf8");

const account = accounts.privateKeyToAccount(process.env.VOUCH_PAYER_KEY.trim());
const client = new fetchPkg.x402Client();
if ((process.env.VOUCH_X402_SCHEME ?? "exact") === "upto") {
  client.register("eip155:*", new upto.UptoEvmScheme(account));
} else {
  evm.registerExactEvmScheme(client, { signer: account });
}

// v1: the transport under the client drops PAYMENT-REQUIRED so only the v1 body is offered.
const transport =
  version === "1"
    ? async (input, init) => {
        const r = await fetch(input, init);
        const headers = new Headers(r.headers);
        headers.delete("PAYMENT-REQUIRED");
        return new Response(await r.arrayBuffer(), { status: r.status, headers });
      }
    : fetch;
const payingFetch = fetchPkg.wrapFetchWithPayment(transport, client);

const response = await payingFetch(url, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: request,
});
let settlement = null;
let name = null;
for (const h of ["PAYMENT-RESPONSE", "X-PAYMENT-RESPONSE"]) {
  const v = response.headers.get(h);
  if (v) {
    name = h;
    settlement = fetchPkg.decodePaymentResponseHeader(v);
    break;
  }
}
const text = await response.text();
let body;
try {
  body = JSON.parse(text);
} catch {
  body = text;
}
process.stdout.write(
  JSON.stringify({
    status: response.status,
    body,
    settlement,
    settlement_header: name,
    address: account.address,
  }),
);
