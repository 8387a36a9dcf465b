"""Verifies one request our server sent with the reference Standard Webhooks
library from PyPI (`standardwebhooks`). Reads JSON from stdin:
{"secret": "whsec_...", "headers": {...}, "body": "..."}; exits 0 when the
signature verifies, 1 (with the reason) when it does not."""

import json
import sys

from standardwebhooks.webhooks import Webhook

request = json.load(sys.stdin)
try:
    Webhook(request["secret"]).verify(request["body"], request["headers"])
except Exception as err:  # the library raises its own error types
    print(f"verification failed: {err!r}", file=sys.stderr)
    sys.exit(1)
print("verified")
