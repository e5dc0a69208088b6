"""Support for the directory tests (no tests here): a small valid file whose line numbers the tests rely on."""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample-directory.yaml"

# Line numbers matter: the tests below name them.
BASE_YAML = """\
fields_of_work:
  - code: crisis-desk
    name: 24/7 desk
    names: {nl: Permanentie, fr: Permanence}
organisations:
  - code: BE-NCCN
    name: Nationaal Crisiscentrum
    country: BE
    languages: [nl, fr, de]
    timezone: Europe/Brussels
    contact_points:
      - field: crisis-desk
        name: Permanentie
        languages: [nl, fr]
        endpoints:
          - {kind: email, address: permanence@nccn.example}
          - {kind: voice, address: '+32 2 555 01 10', priority: 1}
          - {kind: sms, address: '+32 470 55 01 10', verified_at: '2026-03-17T09:15:00Z'}
  - code: LU-CNC
    name: Centre national de crise
    country: LU
    languages: [fr, de, lb]
    timezone: Europe/Luxembourg
"""

TABLES = ("organisation", "field_of_work", "contact_point", "endpoint")


def write(tmp_path: Path, text: str, name: str = "directory.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}
