"""French articles before the name of an organisation, for playbook templates.

"Chères et chers collègues de {{ organisation.name }}" reads "collègues de Centre national de
crise": French puts the article before such a name and contracts it with ``de`` and ``à`` (du,
de la, de l’, des; au, à la, à l’, aux). The template filters ``le``, ``du`` and ``au`` write
"le Centre national de crise", "du Centre national de crise", "au Centre national de crise".

The gender comes from the name's first word, the kind of body it is (centre, secrétariat,
cellule, agence...). A name whose first word is not one of these (a proper name, an acronym,
a name in another language) takes no article, as today; a name written with its article ("La
Cellule de crise") is contracted as written.
"""
from __future__ import annotations

__all__ = ["FILTERS", "article", "au", "du", "le"]

_MASCULINE = frozenset((
    "bureau", "cabinet", "centre", "comité", "commandement", "commissariat", "conseil", "corps", "département",
    "état-major", "gouvernement", "groupe", "haut-commissariat", "institut", "ministère", "office", "poste",
    "secrétariat", "service", "état",
))
_FEMININE = frozenset((
    "administration", "agence", "autorité", "cellule", "commission", "coordination", "défense", "délégation",
    "direction", "division", "gendarmerie", "inspection", "permanence", "plateforme", "police", "préfecture",
    "protection", "province", "région", "salle", "sécurité", "unité",
))
_VOWELS = frozenset("aeiouyàâäéèêëîïôöûüœæ")
_MUTE_H = frozenset(("hôpital", "hôtel"))  # "l’hôpital"; "le haut-commissariat" (aspirated h) takes no elision
_APOSTROPHES = ("l’", "l'")


def _elides(word: str) -> bool:
    return word[:1] in _VOWELS or word in _MUTE_H


def article(name: str) -> str:
    """``le ``, ``la ``, ``l’``, ``les `` or nothing: the article the name takes in French."""
    words = name.split()
    if not words:
        return ""
    first = words[0].lower().rstrip(",;:")
    if first in ("le", "la", "les") or first.startswith(_APOSTROPHES):
        return ""  # written with its article
    known = _MASCULINE | _FEMININE
    singular = first[:-1] if first[-1:] in ("s", "x") and first[:-1] in known else first
    if singular not in known:
        return ""
    if singular != first:
        return "les "
    if _elides(singular):
        return "l’"
    return "le " if singular in _MASCULINE else "la "


def _split_written_article(name: str) -> tuple[str, str]:
    """("le ", "Centre ...") for "Le Centre ..."; ("", name) when the name has no article."""
    low = name.lower()
    for written in ("le ", "la ", "les "):
        if low.startswith(written):
            return written, name[len(written):]
    if low.startswith(_APOSTROPHES):
        return "l’", name[2:]
    return article(name), name


def le(name: str) -> str:
    """The name with its article: "le Centre national de crise", "l’Agence ...", "NCCN"."""
    art = article(name)  # nothing when the name is written with its article: it stays as written
    return f"{art}{name}" if art else name


def du(name: str) -> str:
    """``de`` and the name: "du Centre ...", "de la Cellule ...", "de l’Agence ...", "d’Europol"."""
    art, rest = _split_written_article(name)
    if art == "le ":
        return f"du {rest}"
    if art == "les ":
        return f"des {rest}"
    if art:
        return f"de {art}{rest}"
    return f"d’{name}" if _elides(name[:1].lower()) else f"de {name}"


def au(name: str) -> str:
    """``à`` and the name: "au Centre ...", "à la Cellule ...", "à l’Agence ...", "aux Services ..."."""
    art, rest = _split_written_article(name)
    if art == "le ":
        return f"au {rest}"
    if art == "les ":
        return f"aux {rest}"
    return f"à {art}{rest}" if art else f"à {name}"


FILTERS = {"le": le, "du": du, "au": au}
