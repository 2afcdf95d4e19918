"""Prompt injection: text that tries to give the model orders, told apart from text that talks about it.

A question *about* injection ("how does the system stop 'ignore previous instructions'?") is
honest and common on a security team's knowledge base; an attack *issues* the order. Both hold the
same words, so a rule matches only where the words are used: not inside quotes, and not in a
sentence that first asks or says something about them ("how", "why", "like", "such as", ...,
in the languages of the labelled set). ``bench/guardrails.py`` measures what this blocks on a
labelled set of honest questions and public attack prompts (docs/benchmarks.md); the rules and
markers are tuned on it, so a change here is judged there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_F = re.IGNORECASE | re.DOTALL


@dataclass(frozen=True)
class Rule:
    """A named pattern: the name goes to the user, the logs and the metrics, so a block can be appealed."""

    name: str
    says: str  # what the rule looks for, in words a user reads
    pattern: re.Pattern[str]


_PREVIOUS = (
    r"(?:previous|prior|preceding|above|earlier|foregoing|initial|original|all|any|every|system|your|the)"
    r"|vorherigen?|bisherigen?|obigen?|alle[nr]?|deine[nr]?"  # de
    r"|précédentes?|precedentes?|toutes|tes|vos|les"  # fr
    r"|anteriores?|todas|tus|sus|las|as|le|tutte|precedenti"  # es, pt, it
)
_ORDERS = (
    r"(?:instructions?|prompts?|rules|directions|directives|orders|guidelines|commands|context|text|everything)"
    r"|anweisungen|befehle|regeln|anordnungen|alles"  # de
    r"|consignes|règles|regles|ordres"  # fr
    r"|instrucciones|reglas|órdenes|ordenes|instruções|instrucoes|regras|istruzioni|regole"  # es, pt, it
)

RULES: tuple[Rule, ...] = (
    Rule(
        "injection.override",
        "an order to ignore or forget the assistant's instructions",
        re.compile(
            r"\b(?:ignore|disregard|forget|override|skip|drop|bypass"
            r"|ignorier\w*|vergiss|vergessen|missachte\w*"
            r"|ignor(?:e|ez|es)|oublie\w*|ignor[ae]|olvida\w*|esque[cç]\w*|dimentica\w*)\b"
            rf"(?:.{{0,40}}?\b(?:{_PREVIOUS})\b.{{0,30}}?\b(?:{_ORDERS})\b"
            r"|\s+(?:everything|all|alles|tout|todo|tudo|tutto)\s+(?:before|above|davor|oben|avant|antes|prima)\b)",
            _F,
        ),
    ),
    Rule(
        "injection.exfiltrate",
        "an order to reveal the assistant's hidden instructions",
        re.compile(
            r"\b(?:reveal|print|show|repeat|leak|output|display|dump|tell me|give me|write (?:out|down)|spell out"
            r"|zeig\w*|gib|verrate\w*|montre\w*|affiche\w*|révèle\w*|muestra\w*|revela\w*|mostra\w*)\b"
            r".{0,40}?\b(?:system prompt|your (?:initial |original |hidden |secret )?(?:instructions|prompts?|rules)"
            r"|(?:the |all )?(?:hidden|secret|initial) (?:instructions|prompts?|rules)"
            r"|(?:the |all )?(?:words|text|everything) (?:above|before)(?: this(?: message)?)?"
            r"(?=\s*(?:[.,!;:]|$|starting|word for word|verbatim|in(?:to)? a))"
            r"|initiali[sz]ation"
            r"|systemprompt|prompt (?:système|systeme|del sistema|do sistema))\b",
            _F,
        ),
    ),
    Rule(
        "injection.persona",
        "an order to take on a persona without the assistant's rules",
        re.compile(
            r"\b(?:you are|you're|act as|pretend to be|from now on,? you|du bist|tu es|eres|você é)\b.{0,60}?"
            r"(?:\bDAN\b|\bdo anything now\b|developer mode|jailbroken|\bunrestricted\b|\bunfiltered\b"
            r"|without (?:any )?(?:restrictions|filters|rules|limits|guidelines)"
            r"|no (?:restrictions|filters|rules|limits))",
            _F,
        ),
    ),
    Rule(
        "injection.role",
        "text posing as a system or assistant message",
        re.compile(
            r"<\|im_start\|>|<\|system\|>|\[/?INST\]|<</?SYS>>|</?system>"
            r"|(?:^|\n)\s*(?:#{1,3}\s*)?(?:system|assistant)\s*(?:message|prompt)?\s*:\s*\S",
            _F,
        ),
    ),
)

# Quoted text is a mention: "...", '...', and the typographic quotes of the set's languages.
_QUOTED = re.compile(
    r'"[^"\n]{2,300}"|“[^”\n]{2,300}”|„[^“”\n]{2,300}[“”]|«[^»\n]{2,300}»|`[^`\n]{2,300}`'
    r"|\u2018[^\u2019\n]{2,300}\u2019"
    r"|(?<!\w)'[^'\n]{2,300}'(?!\w)"
)
# Words that, earlier in the same sentence, make what follows a topic rather than an order.
_ABOUT = re.compile(
    r"\b(?:how|why|what|which|when|whether|does|is|are|explain|describe|like|such as|called"
    r"|named|phrases?|examples?|e\.g|about|against|prevent\w*|detect\w*|block\w*|defen[cd]\w*|protect\w*"
    r"|mitigat\w*|recogni[sz]\w*|mean\w*|if (?:a|an|the|someone|a user)"
    r"|wie|warum|was|welche|erkläre\w*|erklär\w*|verhinder\w*|zum beispiel|etwa"  # de
    r"|comment|pourquoi|quoi|quel\w*|explique\w*|empêche\w*|comme|par exemple"  # fr
    r"|cómo|como|por qué|porque|qué|cuál|explica\w*|evita\w*|por ejemplo"  # es, pt
    r"|perché|cosa|spiega\w*|impedisce)\b",
    re.IGNORECASE,
)
_SENTENCE_START = re.compile(r"[.!?;:\n]\s*")


def unquoted(text: str) -> str:
    """``text`` with quoted spans blanked (same length, so offsets still hold)."""
    return _QUOTED.sub(lambda m: " " * len(m.group()), text)


def _is_mention(text: str, start: int) -> bool:
    sentence_start = max((m.end() for m in _SENTENCE_START.finditer(text, 0, start)), default=0)
    return _ABOUT.search(text, sentence_start, start) is not None


def find_injection(text: str) -> Rule | None:
    """The first rule ``text`` breaks by *using* its words (not quoting or asking about them), or None."""
    plain = unquoted(text)
    for rule in RULES:
        for match in rule.pattern.finditer(plain):
            if not _is_mention(plain, match.start()):
                return rule
    return None


def instruction_sentences(text: str) -> list[tuple[int, int]]:
    """The (start, end) spans of the sentences of a passage that give the model orders (indirect injection).

    Used on retrieved passages, which are never questions: a quoted order inside a document is
    still data, but an unquoted one is flagged whatever precedes it in its sentence.
    """
    plain = unquoted(text)
    spans: list[tuple[int, int]] = []
    for rule in RULES:
        for match in rule.pattern.finditer(plain):
            start = max((m.end() for m in _SENTENCE_START.finditer(plain, 0, match.start())), default=0)
            end_match = _SENTENCE_START.search(plain, match.end())
            spans.append((start, end_match.end() if end_match else len(plain)))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):  # two rules may find the same sentence
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
