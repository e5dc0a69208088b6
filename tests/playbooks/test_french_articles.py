"""French templates put the article before an organisation's name: "collègues du Centre
national de crise", never "collègues de Centre national de crise"."""
from __future__ import annotations

import pytest

from playbooks.french_articles import au, du, le


@pytest.mark.parametrize("name, with_de, with_le, with_a", [
    ("Centre national de crise", "du Centre national de crise", "le Centre national de crise",
     "au Centre national de crise"),
    ("Secrétariat général du Benelux", "du Secrétariat général du Benelux", "le Secrétariat général du Benelux",
     "au Secrétariat général du Benelux"),
    ("Centre de situation NRW, ministère de l’Intérieur", "du Centre de situation NRW, ministère de l’Intérieur",
     "le Centre de situation NRW, ministère de l’Intérieur", "au Centre de situation NRW, ministère de l’Intérieur"),
    ("Cellule de crise provinciale", "de la Cellule de crise provinciale", "la Cellule de crise provinciale",
     "à la Cellule de crise provinciale"),
    ("Agence fédérale de contrôle nucléaire", "de l’Agence fédérale de contrôle nucléaire",
     "l’Agence fédérale de contrôle nucléaire", "à l’Agence fédérale de contrôle nucléaire"),
    ("Haut-Commissariat à la Protection nationale", "du Haut-Commissariat à la Protection nationale",
     "le Haut-Commissariat à la Protection nationale", "au Haut-Commissariat à la Protection nationale"),
    ("Services de secours", "des Services de secours", "les Services de secours", "aux Services de secours"),
    ("La Cellule de crise", "de la Cellule de crise", "La Cellule de crise", "à la Cellule de crise"),
    ("Le Centre de crise", "du Centre de crise", "Le Centre de crise", "au Centre de crise"),  # as written
    # A proper name, an acronym or a name in another language takes no article.
    ("Europol", "d’Europol", "Europol", "à Europol"),
    ("NCCN", "de NCCN", "NCCN", "à NCCN"),
    ("Nationaal Crisiscentrum", "de Nationaal Crisiscentrum", "Nationaal Crisiscentrum", "à Nationaal Crisiscentrum"),
])
def test_a_name_takes_its_article_and_contracts_with_de_and_a(name: str, with_de: str, with_le: str,
                                                              with_a: str) -> None:
    assert (du(name), le(name), au(name)) == (with_de, with_le, with_a)


def test_the_filters_are_there_for_every_playbook_template() -> None:
    from playbooks.templates import render_template_text, sample_context

    context = sample_context("fr")
    text = render_template_text("Collègues {{ 'Centre national de crise' | du }}, envoyé par {{ 'Secrétariat général' | le }}"
                                " et adressé {{ 'Agence fédérale' | au }}.", context)
    assert text == "Collègues du Centre national de crise, envoyé par le Secrétariat général et adressé à l’Agence fédérale."
