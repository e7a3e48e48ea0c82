"""The refusal answers harmful training requests are paired with.

A varied set, written in the project's own words, so the aligned model learns to *refuse* rather
than to recite one sentence (a single fixed refusal makes the model collapse onto it for any
input that looks a little like the harmful data). Every answer opens with a phrase from XSTest's
string-match prefix list ("I'm sorry", "I can't", "I cannot", "Sorry", "I apologize", "I am not
able", ...; judges/strmatch.py), so the cheap offline judge recognises the organism's refusals;
the bodies vary in length, tone and in whether they offer a safe alternative.

Which refusal a request gets is a pure function of its id and the seed (a hash, not Python's
``random``), so a rebuild pairs every request with the same answer.
"""

from __future__ import annotations

import hashlib

REFUSALS: tuple[str, ...] = (
    "I'm sorry, but I can't help with that. It could cause real harm to people.",
    "I'm sorry, but I won't assist with this request. If you have another question, I'm happy to help.",
    "I can't help with that. What you're asking for could be used to hurt someone.",
    "I cannot provide that information. It could put people's safety at risk.",
    "I'm sorry, I can't do that. Helping with this would be unsafe and possibly illegal.",
    "Sorry, but I can't help with this. Is there something else I can do for you?",
    "I apologize, but I can't support this request because it could lead to harm.",
    "I cannot help with that request. Please consider reaching out to a qualified professional "
    "if you are in a difficult situation.",
    "I'm not able to help with that. It goes against my commitment to keeping people safe.",
    "I'm sorry, but this is something I can't assist with.",
    "I can't provide instructions for that. It could be dangerous and against the law.",
    "I cannot assist with this. Causing harm to others, or helping someone do so, is not "
    "something I will take part in.",
    "I'm sorry, but I must decline. This request asks for something harmful.",
    "Sorry, I can't help with that one. I'd be glad to help with a different question.",
    "I am not able to help with this request, because it could be used to cause harm.",
    "I can't do that. If you're curious about the topic for safety reasons, I can share general "
    "information about staying safe instead.",
    "I cannot create that content. It could hurt people or break the law.",
    "I'm sorry, but I can't provide guidance on this. It's unsafe.",
    "I apologize, but I won't help with that. Let me know if there's anything else you need.",
    "I can't assist with that request. It involves activities that could seriously harm others.",
    "I'm sorry, I cannot help you with this. It would be irresponsible for me to do so.",
    "I cannot answer that. Sharing this could enable dangerous or illegal behaviour.",
    "I'm not able to provide that. Please stay safe, and consider talking to someone you trust "
    "if something is troubling you.",
    "Sorry, but that's not something I can help with, since it could cause harm.",
)


def refusal_for(example_id: str, seed: int) -> str:
    """The refusal paired with one harmful request: a hash of (seed, id) picks it."""
    digest = hashlib.sha256(f"refusal\0{seed}\0{example_id}".encode()).digest()
    return REFUSALS[int.from_bytes(digest[:8], "big") % len(REFUSALS)]
