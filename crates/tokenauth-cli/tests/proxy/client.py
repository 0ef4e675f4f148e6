#!/usr/bin/env python3
"""A worker written in Python, calling APIs through `tokenauth proxy` with
the standard library only (urllib): what the README's example does.

Reads a JSON list of calls on stdin, each
  {"url": ..., "method": "GET", "headers": {...}, "body": "...",
   "repeat_for_seconds": 0}
and prints one JSON list of results on stdout, each
  {"status": 200, "headers": {...}, "body": "...", "count": 1, "statuses": {...}}
(`count` and `statuses` say how often a repeated call ran and what it got;
`status`, `headers` and `body` are those of its last run). Redirects are
not followed, so a 3xx from the API comes back as it is.
"""

import json
import sys
import time
import urllib.error
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


# No proxy from the environment: the calls go to the tokenauth proxy itself.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect)


def call_once(spec):
    body = spec.get("body")
    request = urllib.request.Request(
        spec["url"],
        data=body.encode() if body is not None else None,
        method=spec.get("method", "GET"),
        headers=spec.get("headers", {}),
    )
    try:
        with opener.open(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def call(spec):
    until = time.monotonic() + spec.get("repeat_for_seconds", 0)
    statuses = {}
    count = 0
    while True:
        status, headers, body = call_once(spec)
        count += 1
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if time.monotonic() >= until:
            break
    return {
        "status": status,
        "headers": {k.lower(): v for k, v in headers.items()},
        "body": body,
        "count": count,
        "statuses": statuses,
    }


print(json.dumps([call(spec) for spec in json.load(sys.stdin)]))
