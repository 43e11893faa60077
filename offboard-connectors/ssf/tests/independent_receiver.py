"""An independent Shared Signals receiver, written against the specs with PyJWT (not our
code): it discovers the transmitter from its path-inserted metadata, creates its own stream
(push or poll), asks for a verification event, then verifies every SET it gets against the
transmitter's JWKS and the SSF 1.0 / CAEP 1.0 / RISC 1.0 / RFC 8417 / RFC 9493 rules.

Usage: independent_receiver.py METADATA_URL TOKEN AUDIENCE push|poll EXPECT

Prints `READY <stream_id>` once its stream exists and the verification was asked, then
`SET <claims as JSON>` for each distinct SET, and exits 0 once it holds the verification SET
and EXPECT other SETs; prints `FAIL <why>` and exits 1 on any violation or after 60 s.
"""

import http.server
import json
import queue
import secrets
import sys
import threading
import time
import urllib.request

import jwt

METADATA_URL, TOKEN, AUDIENCE, MODE, EXPECT = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
PUSH_AUTH = "Bearer " + secrets.token_hex(16)
STATE = secrets.token_urlsafe(16)

RISC = "https://schemas.openid.net/secevent/risc/event-type/"
CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
VERIFICATION = "https://schemas.openid.net/secevent/ssf/event-type/verification"
KNOWN = {
    RISC + "account-disabled", RISC + "account-enabled", RISC + "account-purged",
    CAEP + "session-revoked", CAEP + "credential-change", VERIFICATION,
}
SUBJECT_MEMBERS = {
    "email": ["email"], "iss_sub": ["iss", "sub"], "opaque": ["id"], "account": ["uri"],
    "uri": ["uri"], "phone_number": ["phone_number"], "did": ["url"],
}
CREDENTIAL_TYPES = {"password", "pin", "x509", "fido2-platform", "fido2-roaming", "fido-u2f",
                    "verifiable-credential", "phone-voice", "phone-sms", "app"}
CHANGE_TYPES = {"create", "revoke", "update", "delete"}


class Fail(Exception):
    pass


def check(cond, why):
    if not cond:
        raise Fail(why)


def call(method, url, body=None, token=TOKEN):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=70) as r:
        text = r.read().decode()
        return r.status, (json.loads(text) if text else None)


def check_subject(sub_id, top=True):
    check(isinstance(sub_id, dict), "sub_id is not an object")
    fmt = sub_id.get("format")
    if fmt == "aliases" and top:
        ids = sub_id.get("identifiers")
        check(isinstance(ids, list) and ids, "aliases without identifiers")
        for i in ids:
            check_subject(i, top=False)
        return
    check(fmt in SUBJECT_MEMBERS, "unknown subject format %r" % fmt)
    for m in SUBJECT_MEMBERS[fmt]:
        check(isinstance(sub_id.get(m), str) and sub_id[m], "subject member %s missing" % m)


class Receiver:
    def __init__(self):
        _, self.meta = call("GET", METADATA_URL)
        m = self.meta
        check(m.get("spec_version") == "1_0", "spec_version")
        iss = m["issuer"]
        # SSF 1.0 section 7.2: the metadata URL is the issuer's with the well-known part inserted.
        scheme, rest = iss.split("://", 1)
        host, _, path = rest.partition("/")
        expected = "%s://%s/.well-known/ssf-configuration%s" % (scheme, host, "/" + path if path else "")
        check(METADATA_URL == expected, "metadata not at the path-inserted URL")
        for k in ["jwks_uri", "configuration_endpoint", "status_endpoint", "verification_endpoint",
                  "add_subject_endpoint", "remove_subject_endpoint"]:
            check(isinstance(m.get(k), str) and m[k].startswith(scheme + "://"), "metadata lacks " + k)
        with urllib.request.urlopen(m["jwks_uri"], timeout=10) as r:
            self.jwks = jwt.PyJWKSet.from_dict(json.load(r))
        self.sets = {}
        self.incoming = queue.Queue()

    def verify(self, token):
        header = jwt.get_unverified_header(token)
        check(header.get("typ") == "secevent+jwt", "typ is %r" % header.get("typ"))
        check(header.get("alg") == "ES256", "alg is %r" % header.get("alg"))
        key = self.jwks[header["kid"]]
        claims = jwt.decode(token, key.key, algorithms=["ES256"], audience=AUDIENCE,
                            issuer=self.meta["issuer"],
                            options={"require": ["iss", "iat", "jti", "aud"]})
        check(isinstance(claims["jti"], str) and claims["jti"], "jti")
        check(isinstance(claims["iat"], int), "iat")
        check("exp" not in claims and "sub" not in claims, "exp or sub in a SET")
        check_subject(claims.get("sub_id"))
        events = claims.get("events")
        check(isinstance(events, dict) and len(events) == 1, "events must hold one event")
        (uri, body), = events.items()
        check(uri in KNOWN, "unknown event type " + uri)
        check(isinstance(body, dict), "event body")
        if uri.startswith(CAEP):
            check(isinstance(body.get("event_timestamp"), int), "CAEP event_timestamp")
            check(body.get("initiating_entity") in {"admin", "user", "policy", "system"}, "initiating_entity")
        if uri == CAEP + "credential-change":
            check(body.get("credential_type") in CREDENTIAL_TYPES, "credential_type")
            check(body.get("change_type") in CHANGE_TYPES, "change_type")
        if uri == VERIFICATION:
            check(claims["sub_id"] == {"format": "opaque", "id": self.stream_id}, "verification sub_id")
        else:
            check(isinstance(claims.get("txn"), str), "txn")
        old = self.sets.get(claims["jti"])
        check(old is None or old == claims, "one jti, two different SETs")
        if old is None:
            self.sets[claims["jti"]] = claims
            print("SET " + json.dumps(claims, sort_keys=True), flush=True)
        return claims

    def done(self):
        ver = [c for c in self.sets.values() if VERIFICATION in c["events"]]
        other = [c for c in self.sets.values() if VERIFICATION not in c["events"]]
        if ver:
            check(ver[0]["events"][VERIFICATION].get("state") == STATE, "verification state")
        return bool(ver) and len(other) >= EXPECT

    def serve_push(self):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self, status, body=None):
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                token = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                if self.headers.get("Authorization") != PUSH_AUTH:
                    return self.answer(400, {"err": "authentication_failed", "description": "bad authorization"})
                if self.headers.get("Content-Type") != "application/secevent+jwt":
                    outer.incoming.put(Fail("push content type %r" % self.headers.get("Content-Type")))
                    return self.answer(400, {"err": "invalid_request", "description": "content type"})
                outer.incoming.put(token)
                self.answer(202)

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return "http://127.0.0.1:%d/events" % server.server_address[1]

    def run(self):
        if MODE == "push":
            delivery = {"method": "urn:ietf:rfc:8935", "endpoint_url": self.serve_push(),
                        "authorization_header": PUSH_AUTH}
        else:
            delivery = {"method": "urn:ietf:rfc:8936"}
        status, stream = call("POST", self.meta["configuration_endpoint"], {
            "delivery": delivery, "events_requested": sorted(KNOWN), "description": "independent receiver"})
        check(status == 201, "stream creation answered %d" % status)
        check(stream["iss"] == self.meta["issuer"] and stream["aud"] == AUDIENCE, "stream iss/aud")
        check(set(stream["events_delivered"]) == KNOWN, "events_delivered")
        self.stream_id = stream["stream_id"]
        status, st = call("GET", self.meta["status_endpoint"] + "?stream_id=" + self.stream_id)
        check(st == {"stream_id": self.stream_id, "status": "enabled"}, "status %r" % st)
        status, _ = call("POST", self.meta["verification_endpoint"], {"stream_id": self.stream_id, "state": STATE})
        check(status == 204, "verification answered %d" % status)
        print("READY " + self.stream_id, flush=True)
        deadline = time.time() + 60
        acks = []
        while not self.done():
            check(time.time() < deadline, "timed out with %d SETs" % len(self.sets))
            if MODE == "push":
                try:
                    item = self.incoming.get(timeout=1)
                except queue.Empty:
                    continue
                if isinstance(item, Exception):
                    raise item
                self.verify(item)
            else:
                status, resp = call("POST", stream["delivery"]["endpoint_url"],
                                    {"maxEvents": 10, "returnImmediately": False, "ack": acks})
                check(status == 200, "poll answered %d" % status)
                check(isinstance(resp.get("sets"), dict), "poll sets")
                acks = []
                for jti, token in resp["sets"].items():
                    claims = self.verify(token)
                    check(claims["jti"] == jti, "poll key is not the jti")
                    acks.append(jti)
        if MODE == "poll" and acks:
            call("POST", stream["delivery"]["endpoint_url"], {"ack": acks, "maxEvents": 0, "returnImmediately": True})
            status, resp = call("POST", stream["delivery"]["endpoint_url"], {"returnImmediately": True})
            check(resp["sets"] == {}, "acknowledged SETs came again")


try:
    Receiver().run()
except Exception as e:  # noqa: BLE001 - any failure is the test's failure
    print("FAIL %s: %s" % (type(e).__name__, e), flush=True)
    sys.exit(1)
