#!/usr/bin/env python3
"""Sanity checks for the Larkspur sample dataset (train.csv, test.csv, intents.json)."""

import collections
import csv
import difflib
import json
import os
import re
import string
import sys

HERE = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
EXPECTED = {"train": 55, "test": 15}
PII_OK_INTENTS = {"update_account_details", "account_locked"}
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def norm(text):
    text = text.lower()
    text = text.translate(str.maketrans("", "", string.punctuation + "–—’‘“”…"))
    return " ".join(text.split())


def load(split):
    path = os.path.join(HERE, f"{split}.csv")
    with open(path, encoding="utf-8", newline="") as f:
        raw = f.read()
    if raw.startswith("\ufeff"):
        fail(f"{split}.csv has a BOM")
    rows = list(csv.reader(raw.splitlines(keepends=True)))
    if rows[0] != ["text", "category"]:
        fail(f"{split}.csv header is {rows[0]!r}")
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != 2 or not r[0].strip() or not r[1].strip():
            fail(f"{split}.csv record {i} malformed: {r!r}")
    return [(r[0], r[1]) for r in rows[1:]]


with open(os.path.join(HERE, "intents.json"), encoding="utf-8") as f:
    intents = json.load(f)

data = {s: load(s) for s in EXPECTED}

# --- intents.json ---------------------------------------------------------
print(f"intents.json: {len(intents)} intents")
if len(intents) != 18:
    fail("intents.json must define exactly 18 intents")
for name, meta in intents.items():
    if not re.fullmatch(r"[a-z]+(_[a-z]+)*", name):
        fail(f"intent name not snake_case: {name}")
    if set(meta) != {"description", "priority", "queue"}:
        fail(f"{name}: keys are {sorted(meta)}")
    if meta.get("priority") not in {"low", "normal", "high", "urgent"}:
        fail(f"{name}: bad priority {meta.get('priority')}")

# --- counts per intent/split ----------------------------------------------
print("\nCounts per intent:")
print(f"  {'intent':28s} {'train':>5s} {'test':>5s}")
counts = {s: collections.Counter(c for _, c in rows) for s, rows in data.items()}
for name in intents:
    tr, te = counts["train"][name], counts["test"][name]
    flag = "" if (tr, te) == (EXPECTED["train"], EXPECTED["test"]) else "   <-- WRONG"
    print(f"  {name:28s} {tr:5d} {te:5d}{flag}")
    if flag:
        fail(f"{name}: train={tr} test={te}")
print(f"  {'TOTAL':28s} {len(data['train']):5d} {len(data['test']):5d}")
for s, rows in data.items():
    unknown = {c for _, c in rows} - set(intents)
    if unknown:
        fail(f"{s}.csv has categories missing from intents.json: {sorted(unknown)}")
print("every CSV category present in intents.json:",
      all({c for _, c in rows} <= set(intents) for rows in data.values()))

# --- duplicates -------------------------------------------------------------
all_rows = data["train"] + data["test"]
texts = [t for t, _ in all_rows]
exact_dupes = [t for t, n in collections.Counter(texts).items() if n > 1]
print("\nexact duplicate texts (train+test):", len(exact_dupes))
for t in exact_dupes:
    fail(f"exact duplicate: {t!r}")

norm_train = {norm(t) for t, _ in data["train"]}
norm_test = {norm(t) for t, _ in data["test"]}
overlap = norm_train & norm_test
print("train/test overlap after lowercasing + stripping punctuation:", len(overlap))
for t in overlap:
    fail(f"train/test normalised overlap: {t!r}")
norm_all = collections.Counter(norm(t) for t in texts)
norm_dupes = [t for t, n in norm_all.items() if n > 1]
print("normalised duplicates anywhere:", len(norm_dupes))
for t in norm_dupes:
    fail(f"normalised duplicate: {t!r}")

# --- near duplicates (every pair of messages, both splits, any intent) -----
def tokens(t):
    return set(norm(t).split())

RATIO_LIMIT, JACCARD_LIMIT = 0.80, 0.70
items = [(norm(t), tokens(t), t, c, s) for s, rows in data.items() for t, c in rows]
pairs = []
for i, (n1, k1, t1, c1, s1) in enumerate(items):
    sm = difflib.SequenceMatcher(None, "", n1, autojunk=False)  # b = n1 (cached)
    for n2, k2, t2, c2, s2 in items[i + 1:]:
        jac = len(k1 & k2) / len(k1 | k2)
        sm.set_seq1(n2)
        # quick_ratio() is an upper bound on ratio(), so this never skips a real hit
        if jac < 0.5 and (sm.real_quick_ratio() < 0.65 or sm.quick_ratio() < 0.65):
            continue
        ratio = sm.ratio()
        pairs.append((max(ratio, jac), ratio, jac, t1, c1, s1, t2, c2, s2))
pairs.sort(reverse=True)
near = [p for p in pairs if p[1] >= RATIO_LIMIT or p[2] >= JACCARD_LIMIT]
cross = [p for p in near if p[5] != p[8]]
print(f"\nnear-duplicate pairs (char ratio >= {RATIO_LIMIT} or token Jaccard >= {JACCARD_LIMIT}):"
      f" train/test {len(cross)}, within a split {len(near) - len(cross)}")
for p in near:
    fail(f"near duplicate ({p[1]:.2f}/{p[2]:.2f}, {p[5]}/{p[8]}): {p[3]!r} <-> {p[6]!r}")
print("closest pairs overall (for eyeballing):")
for score, ratio, jac, t1, c1, s1, t2, c2, s2 in pairs[:8]:
    print(f"  ratio={ratio:.2f} jaccard={jac:.2f}  [{s1}/{c1}] {t1[:55]!r}  <->  [{s2}/{c2}] {t2[:55]!r}")

# --- contact details only where allowed -------------------------------------
email_re = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
phone_re = re.compile(r"\b\d{3}[-.\s]\d{4}\b|\(\d{3}\)|\+\d")
bad_contact = []
for t, c in all_rows:
    for m in email_re.finditer(t):
        if c not in PII_OK_INTENTS or not m.group(0).endswith("@example.com"):
            bad_contact.append((c, m.group(0)))
    for m in phone_re.finditer(t):
        if c not in PII_OK_INTENTS or not m.group(0).startswith("555"):
            bad_contact.append((c, m.group(0)))
print("\ncontact details outside allowed intents / non-fake:", len(bad_contact))
for c, v in bad_contact:
    fail(f"contact detail {v!r} in {c}")

# --- descriptive stats --------------------------------------------------------
wc = [len(t.split()) for t in texts]
sentences = [len(re.findall(r"[.!?]+(\s|$)", t)) for t in texts]
print("\nstyle stats (train+test):")
print(f"  words per message: min={min(wc)} median={sorted(wc)[len(wc)//2]} max={max(wc)}")
print(f"  messages with line breaks: {sum(chr(10) in t for t in texts)}")
print(f"  all-lowercase messages: {sum(t == t.lower() and any(ch.isalpha() for ch in t) for t in texts)}")
print(f"  mostly-caps messages: {sum(sum(ch.isupper() for ch in t) > 0.6 * sum(ch.isalpha() for ch in t) for t in texts)}")
print(f"  messages with an LK- order/case number: {sum('LK-' in t for t in texts)}")
print(f"  messages containing non-ASCII characters: {sum(any(ord(ch) > 127 for ch in t) for t in texts)}")
needs_quoting = sum(any(ch in t for ch in ',"\n') for t in texts)
print(f"  CSV fields needing quotes (comma/quote/newline): {needs_quoting}")

print("\nRESULT:", "OK - all checks passed" if not failures else f"{len(failures)} problem(s)")
sys.exit(1 if failures else 0)
