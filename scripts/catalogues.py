"""Extract every text for people into the gettext catalogues and merge it into the .po files.

    python scripts/catalogues.py            # what `make catalogues` runs
    python scripts/catalogues.py --check    # exit 1 listing what is missing or untranslated

Each domain (commtest.i18n.DOMAIN_LANGUAGES) has a mapping file ``babel-<domain>.cfg`` at
the top of the repository: which Python modules and Jinja2 templates it is extracted from.
The English text is the message id; ``--check`` is what the test suite runs.
"""
from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from commtest.i18n import DOMAIN_LANGUAGES, SOURCE_LANGUAGE, po_path  # noqa: E402

KEYWORDS = {"_": None, "gettext": None, "N_": None, "t": None, "ngettext": (1, 2), "n": (1, 2),
            "pgettext": ((1, "c"), 2), "p": ((1, "c"), 2)}


def extract(domain: str) -> Catalog:
    with (REPO / f"babel-{domain}.cfg").open(encoding="utf-8") as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    catalog = Catalog(domain=domain, project="commtest", fuzzy=False)
    for _file, _line, message, comments, context in extract_from_dir(
        str(REPO), method_map, options_map, keywords=KEYWORDS, comment_tags=("Translators:",), strip_comment_tags=True,
    ):
        catalog.add(message, None, auto_comments=comments, context=context)
    return catalog


def _read(domain: str, language: str) -> Catalog:
    path = po_path(domain, language)
    if not path.is_file():
        return Catalog(locale=language, domain=domain, project="commtest", fuzzy=False)
    with path.open("rb") as fh:
        return read_po(fh, locale=language, domain=domain)


def update() -> None:
    for domain, languages in DOMAIN_LANGUAGES.items():
        template = extract(domain)
        for language in languages:
            catalog = _read(domain, language)
            catalog.update(template, no_fuzzy_matching=True)
            catalog.obsolete.clear()
            catalog.fuzzy = False
            path = po_path(domain, language)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as fh:
                write_po(fh, catalog, width=0, sort_output=True, omit_header=False, ignore_obsolete=True,
                         include_lineno=False, no_location=True)
            missing = sum(1 for m in catalog if m.id and not _translated(m) and language != SOURCE_LANGUAGE)
            print(f"{path.relative_to(REPO)}: {len(catalog)} messages, {missing} to translate")


def _translated(message: object) -> bool:
    string = getattr(message, "string", None)
    if getattr(message, "fuzzy", False):
        return False
    if isinstance(string, tuple):
        return all(string)
    return bool(string)


def problems() -> list[str]:
    """Every message without a translation in a language of its domain, every .po entry no
    code uses any more, and every translation whose placeholders differ from its id's."""
    import re

    found: list[str] = []
    placeholder = re.compile(r"%\((\w+)\)[sd]|%\(\w+\)0?\d*d")
    for domain, languages in DOMAIN_LANGUAGES.items():
        wanted = {(m.id if isinstance(m.id, str) else m.id[0], m.context) for m in extract(domain) if m.id}
        for language in languages:
            if language == SOURCE_LANGUAGE:
                continue
            catalog = _read(domain, language)
            have = {(m.id if isinstance(m.id, str) else m.id[0], m.context): m for m in catalog if m.id}
            rel = po_path(domain, language).relative_to(REPO)
            for key in sorted(wanted, key=lambda k: (k[0], k[1] or "")):
                m = have.get(key)
                if m is None or not _translated(m):
                    found.append(f"{rel}: no translation for {key[0]!r}" + (f" (context {key[1]!r})" if key[1] else ""))
                    continue
                ids = m.id if isinstance(m.id, tuple) else (m.id,)
                strings = m.string if isinstance(m.string, tuple) else (m.string,)
                names = set(re.findall(r"%\((\w+)\)", ids[-1]))
                for s in strings:
                    if set(re.findall(r"%\((\w+)\)", s)) != names:
                        found.append(f"{rel}: {key[0]!r}: the translation {s!r} does not use the placeholders {sorted(names)}")
            for key in sorted(set(have) - wanted, key=lambda k: (k[0], k[1] or "")):
                found.append(f"{rel}: {key[0]!r} is no longer used by the code; run `make catalogues`")
    del placeholder
    return found


if __name__ == "__main__":
    if "--check" in sys.argv:
        issues = problems()
        print("\n".join(issues) or "every catalogue is complete")
        sys.exit(1 if issues else 0)
    update()
