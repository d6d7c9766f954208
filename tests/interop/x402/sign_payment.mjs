// Independent peer for Vouch's payment verifier: the official x402 JS v2 client
// (@x402/core, @x402/evm, viem) signs a payment.
//
// Reads a 402 answer from stdin as JSON, {"header": <PAYMENT-REQUIRED value or null>,
// "body": <402 JSON body or null>}, lets the SDK's own client choose a requirement and sign it
// with a viem account, and prints {"header_name", "header", "address", "version"}.
// With VOUCH_X402_SCHEME=upto the client's upto scheme (@x402/evm/upto/client, Permit2) is
// registered instead of exact. A fresh key is generated unless VOUCH_PAYER_KEY (0x + 64 hex) is set; the client's default
// spend controls stay on.
//
// Needs the packages of package.json beside this file (npm ci --prefix tests/interop/x402);
// exits 3 with a message when they are missing.

let core, http, evm, upto, accounts;
try {
  core = await import("@x402/core/client");
  http = await import("@x402/core/http");
  evm = await import("@x402/evm/exact/client");
  upto = await import("@x402/evm/upto/client");
  accounts = await import("viem/accounts");
} catch (e) {
  console.error(`x402 JS SDK not installed (${e.message}); run: npm ci --prefix tests/interop/x402`);
  process.exit(3);
}

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const request = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const paymentRequired = request.header
  ? http.decodePaymentRequiredHeader(request.header)
  : request.body;

const key = process.env.VOUCH_PAYER_KEY || accounts.generatePrivateKey();
const account = accounts.privateKeyToAccount(key);
const client = new core.x402Client();
if ((process.env.VOUCH_X402_SCHEME ?? "exact") === "upto") {
  client.register("eip155:*", new upto.UptoEvmScheme(account));
} else {
  evm.registerExactEvmScheme(client, { signer: account });
}

const payload = await client.createPaymentPayload(paymentRequired);
const version = payload.x402Version;
process.stdout.write(
  JSON.stringify({
    header_name: version === 2 ? "PAYMENT-SIGNATURE" : "X-PAYMENT",
    header: http.encodePaymentSignatureHeader(payload),
    address: account.address,
    version,
  }),
);
