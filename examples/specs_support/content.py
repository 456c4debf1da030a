"""Steps of ``examples/specs/content_phases.yaml``: a deterministic writing pipeline.

Pure functions, no model and no randomness: the same inputs always give the same text,
so a resumed or forked run reproduces its steps exactly. ``outline`` plans the sections,
``draft_section`` writes one (called once per section, concurrently), ``assemble`` joins
them into one Markdown document and ``review`` checks it against the brief.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

ANGLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("The case for {topic}", ("the problem it solves", "who feels the pain",
                             "what failure costs")),
    ("Core ideas behind {topic}", ("the vocabulary", "the mental model",
                                   "the guarantees to expect")),
    ("A first working example", ("the smallest useful setup", "running it",
                                 "reading the result")),
    ("Operating {topic} in production", ("monitoring", "recovery after a crash",
                                          "capacity and cost")),
    ("Common mistakes", ("hidden side effects", "unbounded retries",
                         "missing idempotency keys")),
    ("Where to go next", ("further reading", "patterns worth copying",
                          "questions to ask your team")),
)
OPENERS = ("In practice,", "Put simply,", "Seen from the on-call seat,",
           "For a team starting out,", "Under load,", "Over months of use,")
VERBS = ("shapes", "decides", "changes", "limits", "clarifies", "drives")
CLOSERS = ("and that is what the rest of this section builds on.",
           "which is why it deserves a deliberate decision.",
           "so it is worth measuring before optimising.",
           "and the ledger makes it visible after the fact.")
WORD = re.compile(r"[A-Za-z0-9'-]+")


def _pick(options: tuple[str, ...], *keys: object) -> str:
    """A deterministic choice among ``options`` for the given keys (no randomness)."""
    digest = hashlib.sha256("|".join(str(k) for k in keys).encode()).digest()
    return options[digest[0] % len(options)]


def word_count(text: str) -> int:
    """Words in ``text`` (Markdown punctuation and headings' ``#`` are not words)."""
    return len(WORD.findall(text))


def outline(topic: str, sections: int) -> dict[str, Any]:
    """Plan the document: a title and ``sections`` headings, each with talking points."""
    if not topic.strip():
        raise ValueError("topic must not be empty")
    if not 1 <= sections <= len(ANGLES):
        raise ValueError(f"sections must be between 1 and {len(ANGLES)}, not {sections}")
    chosen = (*ANGLES[:sections - 1], ANGLES[-1]) if sections > 1 else ANGLES[:1]
    return {"title": f"A practical guide to {topic}",
            "sections": [{"heading": heading.format(topic=topic), "points": list(points)}
                         for heading, points in chosen]}


def draft_section(topic: str, heading: str, points: list[str], index: int,
                  words: int) -> dict[str, Any]:
    """Write one section of about ``words`` words: a sentence per point, repeated with
    varied openings until the target is reached. Returns heading, text, words."""
    sentences: list[str] = []
    count = 0
    turn = 0
    while count < words:
        point = points[turn % len(points)]
        sentence = (f"{_pick(OPENERS, topic, heading, turn)} {point} "
                    f"{_pick(VERBS, heading, point, turn)} how {topic.lower()} behaves, "
                    f"{_pick(CLOSERS, index, point, turn)}")
        sentences.append(sentence[0].upper() + sentence[1:])
        count += word_count(sentence)
        turn += 1
    text = " ".join(sentences)
    return {"index": index, "heading": heading, "text": text, "words": word_count(text)}


def assemble(title: str, sections: list[dict[str, Any]]) -> dict[str, Any]:
    """Join the drafted sections (in their planned order) into one Markdown document."""
    ordered = sorted(sections, key=lambda section: int(section["index"]))
    parts = [f"# {title}", ""]
    contents = [f"{number}. {section['heading']}"
                for number, section in enumerate(ordered, start=1)]
    parts += ["Contents:", "", *contents, ""]
    for section in ordered:
        parts += [f"## {section['heading']}", "", str(section["text"]), ""]
    markdown = "\n".join(parts)
    return {"markdown": markdown, "sections": len(ordered), "words": word_count(markdown),
            "body_words": sum(int(section["words"]) for section in ordered)}


def review(markdown: str, min_words: int, max_words: int,
           required: list[str]) -> dict[str, Any]:
    """Check the document: its length is within bounds, every required term appears,
    every section has a body. Returns passed, issues and the figures checked."""
    issues: list[str] = []
    words = word_count(markdown)
    if words < min_words:
        issues.append(f"too short: {words} words, at least {min_words} wanted")
    if words > max_words:
        issues.append(f"too long: {words} words, at most {max_words} wanted")
    lowered = markdown.lower()
    missing = [term for term in required if term.lower() not in lowered]
    if missing:
        issues.append("missing required terms: " + ", ".join(missing))
    bodies = re.split(r"^## .*$", markdown, flags=re.MULTILINE)[1:]
    empty = sum(1 for body in bodies if word_count(body) == 0)
    if empty:
        issues.append(f"{empty} section(s) without text")
    headings = len(re.findall(r"^## ", markdown, flags=re.MULTILINE))
    return {"passed": not issues, "issues": issues, "words": words, "headings": headings,
            "required_terms_found": len(required) - len(missing)}
