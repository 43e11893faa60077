#!/usr/bin/env python3
"""An independent verifier of offboard evidence bundles (format offboard-evidence-v1).

Written from the format's description (offboard-core/src/evidence.rs, ARCHITECTURE.md), not
from the Rust code: it checks the canonical form, the bundle's Ed25519 signature (PyNaCl,
libsodium), every event's digest and hash and the chain links up to the signed checkpoint
(hashlib), the personal values against their commitments, and the checkpoint's signature. It does not replay the run's events through the
state machine (the Rust verifier also checks the summary that way).

Usage: verify-evidence.py BUNDLE --key [KEY_ID=]PUBLIC_KEY_FILE [--key ...]
A public key file holds an Ed25519 SPKI PEM or the raw 32 bytes in base64; without KEY_ID
its key id is the first 16 hex digits of the SHA-256 of the raw key.
Exit 0: verifies; 5: does not verify; 1: usage or I/O error.
"""

import argparse
import base64
import hashlib
import json
import re
import sys

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

FORMAT = "offboard-evidence-v1"
EVIDENCE_DOMAIN = b"offboard-evidence-v1\n"
CHAIN_DOMAIN = "offboard-audit-v2\n"
CHECKPOINT_DOMAIN = "offboard-checkpoint-v1\n"
# The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): 12 bytes, then the key.
SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


class Bad(Exception):
    """The bundle does not verify."""


def canonical(value):
    """Sorted keys, no whitespace, UTF-8, JSON's mandatory escapes only."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def link_hash(seq, prev_hash, body_digest):
    return sha256_hex(f"{CHAIN_DOMAIN}{seq}\n{prev_hash}\n{body_digest}".encode("ascii"))


def load_key(spec):
    key_id, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
    text = open(path, encoding="utf-8").read().strip()
    if text.startswith("-----BEGIN PUBLIC KEY-----"):
        der = base64.b64decode("".join(text.splitlines()[1:-1]))
        if len(der) != 44 or not der.startswith(SPKI_PREFIX):
            raise ValueError(f"{path}: not an Ed25519 public key")
        raw = der[len(SPKI_PREFIX):]
    else:
        raw = base64.b64decode(text, validate=True)
    if len(raw) != 32:
        raise ValueError(f"{path}: not a 32-byte Ed25519 public key")
    return (key_id or sha256_hex(raw)[:16]), VerifyKey(raw)


def check_signature(keys, key_id, message, signature, what):
    if key_id not in keys:
        raise Bad(f"{what} is signed with key {key_id!r}, which was not given")
    try:
        keys[key_id].verify(message, base64.b64decode(signature, validate=True))
    except (BadSignatureError, ValueError) as e:
        raise Bad(f"{what}'s signature does not verify") from e


def nanos(at):
    """A checkpoint's time as its signed bytes write it: nine fractional digits and a Z."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z", at)
    if not m:
        raise Bad(f"checkpoint time {at!r} is not RFC 3339 in UTC")
    return f"{m.group(1)}.{(m.group(2) or '').ljust(9, '0')}Z"


def resolve(doc, pointer):
    """The value at an RFC 6901 JSON pointer, or None."""
    if pointer == "":
        return doc
    if not pointer.startswith("/"):
        return None
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(doc, dict) and token in doc:
            doc = doc[token]
        elif isinstance(doc, list) and token.isdigit() and int(token) < len(doc):
            doc = doc[int(token)]
        else:
            return None
    return doc


def verify(data, keys):
    try:
        text = data.decode("utf-8")
        bundle = json.loads(text)
    except (UnicodeDecodeError, ValueError) as e:
        raise Bad(f"not a JSON file: {e}") from e
    if not isinstance(bundle, dict) or text != canonical(bundle) + "\n":
        raise Bad("not in canonical form")
    if bundle.get("format") != FORMAT:
        raise Bad(f"format {bundle.get('format')!r} is not {FORMAT}")

    # 1. The bundle's signature over the domain line and everything but the signature.
    unsigned = {k: v for k, v in bundle.items() if k != "signature"}
    message = EVIDENCE_DOMAIN + canonical(unsigned).encode("utf-8")
    check_signature(keys, bundle["key_id"], message, bundle["signature"], "the bundle")

    # 2. Every event: its body digest and its hash.
    events = bundle["events"]
    if not events:
        raise Bad("no event")
    for e in events:
        body = {k: v for k, v in e.items() if k not in ("seq", "prev_hash", "hash")}
        digest = sha256_hex(canonical(body).encode("utf-8"))
        if link_hash(e["seq"], e["prev_hash"], digest) != e["hash"]:
            raise Bad(f"event {e['seq']} was altered")
        if e.get("run") != bundle["run"]:
            raise Bad(f"event {e['seq']} is not of run {bundle['run']}")

    # 2b. The personal values: each matches the commitment at its pointer in its event's kind.
    by_seq = {e["seq"]: e for e in events}
    seen = set()
    for d in bundle.get("personal", []):
        seq = d["seq"]
        if seq in seen or seq not in by_seq:
            raise Bad(f"personal values for event {seq} are given twice or for no event")
        seen.add(seq)
        if "salt" in by_seq[seq]:
            raise Bad(f"event {seq} carries a salt")
        salt = bytes.fromhex(d["salt"])
        if len(salt) != 32:
            raise Bad(f"the salt of event {seq} is not 32 bytes")
        for pointer, value in d["values"].items():
            held = resolve(by_seq[seq]["kind"], pointer)
            want = "personal:" + sha256_hex(
                salt + pointer.encode("utf-8") + b"\n" + value.encode("utf-8")
            )
            if held != want:
                raise Bad(f"a personal value of event {seq} does not match its commitment")

    # 3. The chain from the first event to the end, every seq exactly once.
    anchor = bundle["anchor"]
    first, last = events[0]["seq"], events[-1]["seq"]
    end = anchor["checkpoint"]["seq"] if anchor["status"] == "anchored" else last
    if end < last:
        raise Bad("the checkpoint lies before the run's last event")
    items = {}
    for kind, entries in (("event", events), ("link", bundle["links"])):
        seqs = [x["seq"] for x in entries]
        if seqs != sorted(set(seqs)):
            raise Bad(f"{kind}s are out of order")
        for x in entries:
            if x["seq"] in items or not first <= x["seq"] <= end:
                raise Bad(f"seq {x['seq']} is carried twice or out of range")
            items[x["seq"]] = (kind, x)
    head = events[0]["prev_hash"]
    for seq in range(first, end + 1):
        if seq not in items:
            raise Bad(f"seq {seq} is missing")
        kind, x = items[seq]
        if kind == "event":
            if x["prev_hash"] != head:
                raise Bad(f"event {seq} does not link to the chain before it")
            head = x["hash"]
        else:
            if not re.fullmatch(r"[0-9a-f]{64}", x["body_digest"]):
                raise Bad(f"the link at seq {seq} is no digest")
            head = link_hash(seq, head, x["body_digest"])

    # 4. The anchor: the checkpoint's signature and its hash.
    if anchor["status"] != "anchored":
        return f"not anchored: the events are genuine and linked through seq {last}"
    cp = anchor["checkpoint"]
    signed = (
        f"{CHECKPOINT_DOMAIN}seq:{cp['seq']}\nhash:{cp['hash']}\n"
        f"at:{nanos(cp['at'])}\nkey_id:{cp['key_id']}\n"
    ).encode("utf-8")
    check_signature(keys, cp["key_id"], signed, cp["signature"], f"checkpoint {cp['seq']}")
    if cp["hash"] != head:
        raise Bad(f"the chain does not reach checkpoint {cp['seq']}'s signed hash")
    return (
        f"anchored: {len(events)} events of run {bundle['run']} (seq {first}..{last}) "
        f"proven up to checkpoint {cp['seq']} (key {cp['key_id']})"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--key", action="append", required=True, metavar="[KEY_ID=]FILE")
    args = parser.parse_args()
    try:
        keys = dict(load_key(spec) for spec in args.key)
        data = open(args.bundle, "rb").read()
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        print(verify(data, keys))
        return 0
    except (Bad, KeyError, TypeError, AttributeError, IndexError) as e:
        print(f"DOES NOT VERIFY: {e}", file=sys.stderr)
        return 5


if __name__ == "__main__":
    sys.exit(main())
