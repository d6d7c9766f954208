#!/usr/bin/env python3
"""Independent peer: the official x402 Python SDK pays for a real inference over HTTP.

Usage: pay_http.py URL VERSION < request.json
Posts the JSON request to URL through a requests.Session wrapped by the SDK
(x402ClientSync + register_exact_evm_client + wrapRequestsWithPayment), which reads the 402,
signs an EIP-3009 authorization with the key in VOUCH_PAYER_KEY (0x + 64 hex) and retries.
VERSION 2 uses the server's answer as sent (PAYMENT-REQUIRED header); VERSION 1 hides that
header from the SDK, as a v1-only server would answer, so the SDK pays from the v1 JSON body.
With VOUCH_X402_SCHEME=upto the SDK's upto scheme is registered instead of exact
(UptoEvmClientScheme: a Permit2 PermitWitnessTransferFrom for the offered maximum, v2 only), so
it pays a metered resource (a chat) the way the official client does.
Prints {"status", "body", "settlement", "settlement_header"}; exit 3 if the SDK is missing.
"""

import json
import os
import sys

try:
    import requests
    from eth_account import Account
    from x402 import x402ClientSync
    from x402.http.clients.requests import wrapRequestsWithPayment
    from x402.http.utils import decode_payment_response_header
    from x402.mechanisms.evm.exact import register_exact_evm_client
    from x402.mechanisms.evm.signers import EthAccountSigner
    from x402.mechanisms.evm.upto import UptoEvmClientScheme
except ImportError as e:  # pragma: no cover - environment check
    print(f"x402 SDK not installed ({e}); run tests/setup/pay.sh", file=sys.stderr)
    sys.exit(3)


class HideV2Header(requests.adapters.HTTPAdapter):
    """The transport under the SDK's adapter: drops PAYMENT-REQUIRED so only v1 is offered."""

    def send(self, request, **kwargs):
        response = super().send(request, **kwargs)
        response.headers.pop("PAYMENT-REQUIRED", None)
        return response


def main() -> None:
    url, version = sys.argv[1], sys.argv[2]
    request = json.load(sys.stdin)
    account = Account.from_key(os.environ["VOUCH_PAYER_KEY"].strip())
    client = x402ClientSync()
    if os.environ.get("VOUCH_X402_SCHEME", "exact") == "upto":
        client.register("eip155:*", UptoEvmClientScheme(EthAccountSigner(account)))
    else:
        register_exact_evm_client(client, EthAccountSigner(account))
    session = wrapRequestsWithPayment(requests.Session(), client)
    if version == "1":
        # Put the v2-hiding transport under the SDK's own payment adapter.
        sdk_adapter = session.get_adapter(url)
        cls = type("V1Only", (type(sdk_adapter), HideV2Header), {})
        adapter = cls(client)
        session.mount("http://", adapter)
    response = session.post(url, json=request, timeout=300)
    settlement, name = None, None
    for h in ("PAYMENT-RESPONSE", "X-PAYMENT-RESPONSE"):
        if response.headers.get(h):
            name = h
            settlement = decode_payment_response_header(response.headers[h]).model_dump(
                by_alias=True, exclude_none=True
            )
            break
    try:
        body = response.json()
    except ValueError:
        body = response.text
    json.dump(
        {
            "status": response.status_code,
            "body": body,
            "settlement": settlement,
            "settlement_header": name,
            "address": account.address,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
