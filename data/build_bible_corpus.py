#!/usr/bin/env python3
"""Build the Spanish-English verse-aligned Bible corpus shipped in data/bible_es_en.

Sources (Debian packages, read with pysword; modules under /usr/share/sword):
  sword-text-sparv  spaRV1909eb   Reina-Valera 1909 (Spanish side)
  sword-text-web    engWEB2015eb  World English Bible (English side)
  sword-text-kjv    engKJV2006eb  King James Version (alignment pivot only)

Why a pivot: the RV1909 module is keyed by KJV versification but keeps the
Spanish verse numbers in some chapters (Num 13, Jonah 2, Job 39-40, ...), so
matching by reference alone shifts ~190 verses.  RV1909 and KJV tag words with
the same Strong's numbers, so each book is aligned RV1909 -> KJV by content
(monotone dynamic programming in a small band), and the English side is the
WEB verse that has the KJV reference (the WEB shares KJV verse numbers for the
protocanonical books; a content check between the two English texts catches
the few exceptions).  Rows are written per KJV/WEB reference; where one RV1909
entry holds several KJV verses (overflow of a longer Spanish chapter) the row
id is a range, e.g. "Jonah 2:9-10".

Usage:
  python data/build_bible_corpus.py --out data/bible_es_en          # build
  python data/build_bible_corpus.py --check                         # cross-check pysword vs mod2imp
"""

import argparse
import functools
import gzip
import hashlib
import html
import importlib.metadata
import json
import os
import re
import subprocess
import sys
from collections import Counter

SWORD_PATH = "/usr/share/sword"
MODULES = {"es": "spaRV1909eb", "kjv": "engKJV2006eb", "en": "engWEB2015eb"}
PACKAGES = ("sword-text-sparv", "sword-text-web", "sword-text-kjv", "libsword-utils")
BUILD_COMMAND = "python data/build_bible_corpus.py --out data/bible_es_en"

# Whole-book split (OSIS names); every other protocanonical book is train.
TEST_BOOKS = ("Ruth", "Eccl", "Lam", "Amos", "Jonah", "John", "Gal", "Jas")
VALID_BOOKS = ("Judg", "Song", "Hab", "Eph", "1Pet")
SPLITS = ("train", "validation", "test")

# Alignment parameters.  BAND bounds |es slot - KJV verse| inside a book; the
# largest real displacement is Job 40 (Spanish 40:1 = KJV 40:6), so 6 is enough.
BAND = 6
MAX_MERGE = 10  # one RV1909 entry may hold up to this many KJV verses (Job 39:30 holds 9)
MERGE_PENALTY = 1.0  # per extra verse in a bead, so chance overlaps do not glue verses together
PAIR_BONUS = 0.05  # pairing beats skipping when nothing overlaps (verses without tags)
DIAGONAL_BONUS = 0.1  # breaks ties in favour of the plain reference match

# Spanish enclitic pronouns: an added-word span holding one of these is glued
# to the verb before it ("sáca<lo>" -> "sácalo"), any other span gets spaces.
CLITICS = {"lo", "la", "le", "los", "las", "les", "me", "te", "se", "nos", "os"}
BOUNDARY = "\x01"  # placeholder for removed markup that separated two words


# --------------------------------------------------------------------------- reading


def open_library():
    """Return a pysword SwordModules object for the system SWORD library."""
    from pysword.modules import SwordModules

    library = SwordModules(SWORD_PATH)
    library.parse_modules()
    return library


def read_module(library, key, books):
    """Return {(osis_book, chapter, verse): raw OSIS text} for `books` of module `key`.

    Chapter lengths come from the module's own versification (KJV or NRSVA).
    """
    bible = library.get_bible_from_module(key)
    # pysword inflates the whole compressed book block again for every verse;
    # caching the last blocks (a private method) makes reading minutes faster.
    bible._decompressed_text = functools.lru_cache(maxsize=8)(bible._decompressed_text)
    structure = bible.get_structure()
    verses = {}
    for osis in books:
        _, book = structure.find_book(osis)
        for chapter, length in enumerate(book.chapter_lengths, 1):
            texts = list(bible.get_iter(books=osis, chapters=chapter, clean=False))
            assert len(texts) == length, (key, osis, chapter)
            for verse, text in enumerate(texts, 1):
                verses[(osis, chapter, verse)] = text
    return verses


def kjv_books():
    """Return [(osis, English name)] for the 66 protocanonical books, in canonical order."""
    from pysword.canons import canons

    names = []
    for testament in ("ot", "nt"):
        for name, osis, _abbr, _lengths in canons["kjv"][testament]:
            # pysword spells "I Samuel", "Song of Solomon", "Revelation of John".
            name = re.sub(r"^(I{1,3}) ", lambda m: "%d " % len(m.group(1)), name)
            name = {"Song of Solomon": "Song of Songs", "Revelation of John": "Revelation"}.get(name, name)
            names.append((osis, name))
    return names


# --------------------------------------------------------------------------- cleaning


def strongs(raw):
    """Set of Strong's numbers tagged in a verse (notes excluded), e.g. {'H430', 'H1254'}."""
    raw = re.sub(r"<note\b.*?</note>", "", raw, flags=re.S)
    numbers = set()
    for lemma in re.findall(r'lemma="([^"]*)"', raw):
        numbers.update(p + str(int(n)) for p, n in re.findall(r"\b([HG])(\d+)", lemma))
    return numbers


def _added_words(match):
    """Turn an RV1909 <transChange> span (italic added words) into text with sane spacing.

    In this module the spans are glued to the neighbouring words ("Gracia<sea>á");
    a single enclitic pronoun is really part of the verb before it ("sáca<lo>").
    """
    before, body, after = match.group(1), match.group(2), match.group(3)
    word_before = re.search(r"\w+$", before)
    glue = (
        body in CLITICS
        and word_before is not None
        and (not after[:1].isalnum() or re.search(r"[áéíóú]", word_before.group()))
    )
    return before + ("" if glue else BOUNDARY) + body + BOUNDARY + after


def clean_text(raw):
    """Strip OSIS markup from one verse and return plain, whitespace-normalised text."""
    # Anything after the chapter's closing milestone is not verse text (in the
    # WEB the whole glossary hangs off Rev 22:21).
    raw = raw.split("<chapter eID", 1)[0]
    # Elements dropped with their content: notes (incl. cross-references),
    # speaker labels and non-canonical headings.  Canonical titles (Psalm
    # superscriptions) are kept: RV1909 has them inline in verse 1.
    raw = re.sub(r"<(note|speaker)\b[^>]*>.*?</\1>", BOUNDARY, raw, flags=re.S)
    raw = re.sub(r'<title\b(?![^>]*canonical="true")[^>]*>.*?</title>', BOUNDARY, raw, flags=re.S)
    # <w> only wraps words that carry their own spacing; other tags may separate words.
    raw = re.sub(r"</?w\b[^>]*>", "", raw)
    raw = re.sub(r"([^<]{0,40})<transChange\b[^>]*>(.*?)</transChange>([^<]?)", _added_words, raw)
    text = html.unescape(re.sub(r"<[^>]*>", BOUNDARY, raw))
    # A removed element between a word (or closing punctuation) and a word
    # stands for a space; anywhere else it is nothing.
    text = re.sub(r"(?<=[\w,.;:!?’”)])%s+(?=[\w“‘(¿¡])" % BOUNDARY, " ", text)
    text = text.replace(BOUNDARY, "")
    text = re.sub(r"\s+([,.;:!?’”])", r"\1", " ".join(text.split()))
    return text.strip()


WORD = re.compile(r"[^\W\d_]+")


def capitalised_words(texts):
    """Words that are usually capitalised mid-sentence in `texts` (proper nouns: Jehová, David)."""
    counts = Counter()
    for text in texts:
        # Only words after a space that does not follow sentence punctuation:
        # a sentence-initial capital says nothing.
        counts.update(re.findall(r"(?<![.!?¿¡:\s])\s+(\w+)", text))
    return {w for w in counts if w[:1].isupper() and w[1:].islower() and counts[w] > counts[w.lower()]}


def restore_opening_case(text, proper):
    """Undo the all-caps chapter opening of RV1909 ("EN el principio", "Y DESPUÉS movió").

    Only the first run of all-caps words is touched (later caps such as
    "YO SOY EL QUE SOY" are deliberate); a run may start with one-letter words
    ("Y Á SUS"); Ps 119's acrostic letter is skipped ("ALEPH. BIENAVENTURADOS").
    Words after the first keep a capital only if they are proper nouns
    ("Y JEHOVÁ" -> "Y Jehová", "Y DESPUÉS" -> "Y después").
    """
    words = list(WORD.finditer(text))

    def caps(n):
        return n < len(words) and words[n].group().isupper()

    def joined(n):  # words n and n+1 are separated by whitespace only
        return text[words[n].end() : words[n + 1].start()].isspace()

    for n in range(len(words)):
        if not (caps(n) and len(words[n].group()) > 1):
            continue
        start = end = n
        while start and caps(start - 1) and len(words[start - 1].group()) == 1 and joined(start - 1):
            start -= 1
        while caps(end + 1) and joined(end):
            end += 1
        if text[words[end].end() : words[end].end() + 2] == ". " and caps(end + 1):
            continue
        run = [m.group() for m in words[start : end + 1]]
        fixed = [run[0][0] + run[0][1:].lower()]
        fixed += [w.capitalize() if w.capitalize() in proper else w.lower() for w in run[1:]]
        return text[: words[start].start()] + " ".join(fixed) + text[words[end].end() :]
    return text


def strip_subscription(es):
    """Cut the traditional subscription off an epistle's last RV1909 verse.

    RV1909 appends it to the verse text ("... Amén. Enviada de Roma á los
    Gálatas."); the KJV has it as a title after the chapter and the WEB not
    at all, so the verse is cut after its final "Amén.".
    """
    return es[: es.rindex("Amén.") + len("Amén.")] if "Amén." in es else es


# --------------------------------------------------------------------------- alignment


def align_book(es_tags, kjv_tags, es_empty):
    """Align a book's RV1909 entries to its KJV verses by shared Strong's numbers.

    Both lists are in book order and have equal length (RV1909 is keyed in KJV
    versification).  Returns beads (es_indices, kjv_indices): monotone, within
    BAND of the diagonal, each bead one or two RV1909 entries with
    1..MAX_MERGE KJV verses.  Entries/verses in no bead are
    unaligned (empty RV1909 slots, or verses only one text has).
    """
    n = len(es_tags)
    best = {(0, 0): 0.0}
    back = {}

    def offer(cell, score, prev, bead):
        if score > best.get(cell, float("-inf")):
            best[cell], back[cell] = score, (prev, bead)

    for i in range(n + 1):
        for j in range(max(0, i - BAND), min(n, i + BAND) + 1):
            if (i, j) == (0, 0):
                continue
            # Skips: cost nothing, they just forgo overlap.
            if (i - 1, j) in best:
                offer((i, j), best[(i - 1, j)], (i - 1, j), None)
            if (i, j - 1) in best:
                offer((i, j), best[(i, j - 1)], (i, j - 1), None)
            if i == 0 or j == 0 or es_empty[i - 1]:
                continue
            # a es entries (1 or 2: a Spanish verse break inside a KJV verse)
            # <-> b KJV verses (a longer Spanish chapter's overflow).
            for a in (1, 2):
                if i < a or any(es_empty[i - a : i]):
                    continue
                tags = es_tags[i - 1] | es_tags[i - a]
                covered = set()
                for b in range(1, min(MAX_MERGE, j) + 1):
                    covered |= tags & kjv_tags[j - b]
                    prev = (i - a, j - b)
                    if prev in best:
                        bonus = PAIR_BONUS + (DIAGONAL_BONUS if a == b == 1 and i == j else 0.0)
                        score = best[prev] + len(covered) - MERGE_PENALTY * (a + b - 2) + bonus
                        offer((i, j), score, prev, (range(i - a, i), range(j - b, j)))

    beads, cell = [], (n, n)
    while cell != (0, 0):
        cell, bead = back[cell]
        if bead:
            beads.append(bead)
    return beads[::-1]


def english_words(text):
    """Lower-cased word set, for comparing the KJV and WEB renderings of a verse."""
    return set(re.findall(r"[a-z]+", text.lower()))


def jaccard(a, b):
    return len(a & b) / max(1, len(a | b))


def pair_web_to_kjv(keys, kjv_text, web_text):
    """Map each KJV reference to its WEB text, checking the two English texts agree.

    The WEB shares KJV verse numbers for the protocanon, with two kinds of
    exception found by content: adjacent verses in swapped order (Matt 23:13-14)
    are swapped back, and a WEB verse more than 3x longer or shorter than the
    KJV one (Rom 14:23, which carries the doxology, 1 John 5:7 without the
    Comma) is left out.  Returns ({key: text}, [notes]).
    """
    words = {k: (english_words(kjv_text[k]), english_words(web_text[k])) for k in keys}
    web = dict(web_text)
    notes = []
    for a, b in zip(keys, keys[1:]):
        if a[:2] != b[:2]:
            continue
        straight = jaccard(words[a][0], words[a][1]) + jaccard(words[b][0], words[b][1])
        crossed = jaccard(words[a][0], words[b][1]) + jaccard(words[b][0], words[a][1])
        if crossed > straight + 0.5:  # clear-cut only: Matt 23:13-14 scores 0.37 vs 1.16
            web[a], web[b] = web_text[b], web_text[a]
            notes.append("swapped WEB %s %d:%d and the next verse" % a)
    for k in keys:
        n_kjv, n_web = len(kjv_text[k].split()), len(web[k].split())
        if n_web and n_kjv and not 1 / 3 <= n_web / n_kjv <= 3:
            notes.append("dropped WEB %s %d:%d (%d words vs KJV %d)" % (k + (n_web, n_kjv)))
            web[k] = ""
    return web, notes


def ref_id(name, refs):
    """'Genesis 1:1', or a range 'Jonah 2:9-10' / 'Job 39:27-40:5' for merged verses."""
    (_, c1, v1), (_, c2, v2) = refs[0], refs[-1]
    if refs[0] == refs[-1]:
        return "%s %d:%d" % (name, c1, v1)
    return "%s %d:%d-%s" % (name, c1, v1, str(v2) if c1 == c2 else "%d:%d" % (c2, v2))


# --------------------------------------------------------------------------- build


def spanish_texts(raw_es, raw_kjv, keys):
    """Clean RV1909 text for every KJV-keyed slot: markup, chapter-opening caps, subscriptions."""
    es = {k: clean_text(raw_es[k]) for k in keys}
    proper = capitalised_words(es.values())
    for k in keys:
        # Chapter openings (in Spanish numbering always slot :1) and the one
        # mid-chapter opening, Luke 1:5 ("HUBO en los días").
        first, _, rest = es[k].partition(" ")
        if k[2] == 1 or (len(first) > 1 and first.isalpha() and first.isupper() and rest[:1].islower()):
            es[k] = restore_opening_case(es[k], proper)
    for book in dict.fromkeys(k[0] for k in keys):
        last_kjv = max(k for k in keys if k[0] == book)
        if "<title" in raw_kjv[last_kjv].partition("<chapter eID")[2]:  # the KJV has a subscription
            last_es = max(k for k in keys if k[0] == book and es[k])
            es[last_es] = strip_subscription(es[last_es])
    return es


def build_rows(library):
    """Read the three modules and align them.

    Returns ({split: [row, ...]} in canonical order, [build-log lines]).
    """
    books = kjv_books()
    osis_books = [osis for osis, _ in books]
    raw = {side: read_module(library, key, osis_books) for side, key in MODULES.items()}
    keys = list(raw["kjv"])  # canonical KJV order
    es_text = spanish_texts(raw["es"], raw["kjv"], keys)
    kjv_text = {k: clean_text(raw["kjv"][k]) for k in keys}
    web_text, notes = pair_web_to_kjv(keys, kjv_text, {k: clean_text(raw["en"].get(k, "")) for k in keys})
    extra = [k for k in raw["en"] if k[0] in osis_books and k not in raw["kjv"] and clean_text(raw["en"][k])]
    notes += ["WEB verse outside KJV versification: %s %d:%d" % k for k in extra]

    rows = {split: [] for split in SPLITS}
    realigned, unpaired = 0, []
    for osis, name in books:
        book_keys = [k for k in keys if k[0] == osis]
        beads = align_book(
            [strongs(raw["es"][k]) for k in book_keys],
            [strongs(raw["kjv"][k]) for k in book_keys],
            [not es_text[k] for k in book_keys],
        )
        split = "test" if osis in TEST_BOOKS else "validation" if osis in VALID_BOOKS else "train"
        paired = set()
        for es_idx, kjv_idx in beads:
            es_keys = [book_keys[i] for i in es_idx]
            refs = [book_keys[j] for j in kjv_idx]
            realigned += es_keys != refs
            en = [web_text[r] for r in refs]
            if not all(en):  # the WEB lacks (part of) this verse: no pair
                continue
            paired.update(refs)
            rows[split].append(
                {
                    "id": ref_id(name, refs),
                    "translation": {"es": " ".join(es_text[k] for k in es_keys), "en": " ".join(en)},
                }
            )
        unpaired += ["%s %d:%d" % (name, c, v) for (_, c, v) in book_keys if (osis, c, v) not in paired]
    log = [
        "pairs realigned away from the plain reference match: %d" % realigned,
        "merged pairs (range ids): %d" % sum("-" in r["id"] for split in SPLITS for r in rows[split]),
        "KJV verses in no pair (%d): %s" % (len(unpaired), ", ".join(unpaired)),
    ]
    return rows, log + notes


def write_jsonl_gz(path, rows):
    """Write rows as gzip JSON Lines, byte-identical across rebuilds (mtime=0, no file name)."""
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    with open(path, "wb") as raw_file:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw_file, mtime=0, compresslevel=9) as gz:
            gz.write(payload)


def package_versions():
    """{package: version} from dpkg, plus pysword's version."""
    versions = {}
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Package}\t${Version}\n", *PACKAGES], capture_output=True, text=True, check=False
        ).stdout
        versions.update(line.split("\t") for line in out.splitlines() if "\t" in line)
    except OSError:
        pass
    versions["pysword"] = importlib.metadata.version("pysword")
    return versions


def stats_table(rows):
    """Markdown table: pairs and whitespace tokens per side for each split."""
    lines = ["| split | pairs | es tokens | en tokens |", "|---|---:|---:|---:|"]
    for split in SPLITS:
        es = sum(len(r["translation"]["es"].split()) for r in rows[split])
        en = sum(len(r["translation"]["en"].split()) for r in rows[split])
        lines.append("| %s | %d | %d | %d |" % (split, len(rows[split]), es, en))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="data/bible_es_en", help="output directory")
    parser.add_argument("--readme", help="README to (re)write; default: README.md beside --out")
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare pysword's raw text with libsword-utils' mod2imp export, then exit",
    )
    args = parser.parse_args(argv)
    library = open_library()
    if args.check:
        return check_against_mod2imp(library)

    rows, log = build_rows(library)
    print("\n".join(log))
    os.makedirs(args.out, exist_ok=True)
    digests = {}
    for split in SPLITS:
        path = os.path.join(args.out, split + ".jsonl.gz")
        write_jsonl_gz(path, rows[split])
        with open(path, "rb") as f:
            digests[path] = hashlib.sha256(f.read()).hexdigest()
        print("%s: %d pairs" % (path, len(rows[split])))
    readme = args.readme or os.path.join(os.path.dirname(os.path.normpath(args.out)) or ".", "README.md")
    write_readme(readme, rows, log, digests, package_versions())
    print(stats_table(rows))
    return 0


# --------------------------------------------------------------------------- check & README


def check_against_mod2imp(library):
    """Cross-check: every verse pysword reads must equal mod2imp's raw export (modulo whitespace)."""
    from pysword.canons import canons

    name_to_osis = {b[0]: b[1] for v in ("kjv", "nrsva") for t in ("ot", "nt") for b in canons[v][t]}
    osis_books = [osis for osis, _ in kjv_books()]
    status = 0
    for key in MODULES.values():
        out = subprocess.run(["mod2imp", key], capture_output=True, text=True, check=True).stdout
        exported = {}
        for entry in out.split("$$$")[1:]:
            ref, _, body = entry.partition("\n")
            m = re.match(r"(.+) (\d+):(\d+)$", ref)
            if m and m.group(1) in name_to_osis and int(m.group(2)) and int(m.group(3)):
                exported[(name_to_osis[m.group(1)], int(m.group(2)), int(m.group(3)))] = body
        ours = read_module(library, key, osis_books)
        differ = [k for k in ours if " ".join(ours[k].split()) != " ".join(exported.get(k, "").split())]
        print("%s: %d verses compared, %d differ %s" % (key, len(ours), len(differ), differ[:5]))
        status |= bool(differ)
    return status


README_TEMPLATE = """\
# Bundled data: Spanish-English Bible corpus (`bible_es_en/`)

Verse-aligned Spanish-English parallel text for the sequence-level knowledge
distillation experiments: `train`, `validation` and `test` splits, one JSON
object per line (gzip JSON Lines), in canonical book order.  Ids use KJV (=
WEB) verse numbers.

```json
{{"id": "Genesis 1:1", "translation": {{"es": "En el principio crió Dios los cielos y la tierra.", "en": "In the beginning, God created the heavens and the earth."}}}}
```

```python
from datasets import load_dataset
ds = load_dataset("json", data_files={{s: f"data/bible_es_en/{{s}}.jsonl.gz" for s in ("train", "validation", "test")}})
```

## Splits

Whole books, so no verse of a test book is seen in training:

- test: Ruth, Ecclesiastes, Lamentations, Amos, Jonah, John, Galatians, James
- validation: Judges, Song of Songs, Habakkuk, Ephesians, 1 Peter
- train: the other 53 books of the 66-book protocanon (no deuterocanonical books)

Pairs and whitespace-separated tokens per side:

{stats}

## Provenance

Debian packages (`dpkg-query -W`) and the Python reader used:

{versions}

- Spanish: module `spaRV1909eb`, Reina-Valera 1909 (sword-text-sparv).
- English: module `engWEB2015eb`, World English Bible text (sword-text-web).
- Alignment pivot only: module `engKJV2006eb`, King James Version (sword-text-kjv).

The raw text is read with pysword; `python data/build_bible_corpus.py --check`
confirms it equals libsword-utils' `mod2imp` export verse for verse.

RV1909 is keyed by KJV versification but keeps Spanish verse numbers in some
chapters (Num 13 and 30, 1 Sam 24, 1 Kgs 22, 1 Chr 21, 2 Chr 33, Job 38-40,
Hos 12, Jonah 2, 2 Cor 13, ...).  Each book is therefore aligned RV1909 -> KJV
by shared Strong's numbers (monotone dynamic programming, at most {band} verses
off the diagonal), and the English side is the WEB verse with the same KJV
reference.  Where RV1909 holds several KJV verses in one entry (or splits
verses differently) the pair covers them all and its id is a range
(`Jonah 2:9-10`, `Job 39:27-40:5`).

Processing: OSIS markup stripped (Strong's tags, notes with their content,
cross-references, non-canonical headings, speaker labels in Song of Songs;
canonical Psalm titles are kept, as RV1909 has them inline); spaces restored
around RV1909's added-word spans ("Graciaseaá" -> "Gracia sea á"); all-caps
RV1909 chapter openings re-cased ("EN el principio" -> "En el principio");
RV1909's subscriptions to the epistles ("Escrita de Roma ...") removed, as the
WEB has none; whitespace normalised.  Pairs with an empty side are dropped, as
are the WEB's deuterocanonical books, preface and glossary.

Build log:

{log}

Rebuild (output is byte-identical: gzip with mtime=0):

```sh
apt-get install -y sword-text-sparv sword-text-web sword-text-kjv libsword-utils
pip install pysword
{command}
python -m pytest tests/test_corpus.py -q
```

## License

Every source module's `.conf` says `DistributionLicense=Public Domain`.  The
WEB's conf adds that "World English Bible" is a trademark of eBible.org and
asks that a text changed in any way no longer be called the World English
Bible.  This corpus is such a modified text (markup stripped, verses realigned
and merged, some verses dropped), so it must not be called the World English
Bible; describe its English side as "derived from the public-domain World
English Bible".

## sha256

```
{digests}
```
"""


def write_readme(path, rows, log, digests, versions):
    """Write data/README.md with provenance, license, counts and checksums."""
    base = os.path.dirname(path)
    text = README_TEMPLATE.format(
        stats=stats_table(rows),
        versions="\n".join("- `%s` %s" % kv for kv in sorted(versions.items())),
        band=BAND,
        command=BUILD_COMMAND,
        log="\n".join("- " + line for line in log),
        digests="\n".join("%s  %s" % (d, os.path.relpath(p, base)) for p, d in sorted(digests.items())),
    )
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
